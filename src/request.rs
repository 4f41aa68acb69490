//! One request, from FastCGI parameters to an answer.
//!
//! Nginx sends a request here only when the derivative is not in the cache
//! tree. The steps: check the method and the deployment, split the URL
//! into options and the original's path, read the original, render, store
//! the derivative where Nginx will find it next time, answer with the same
//! headers Nginx will give that file as a hit.
//!
//! The status page and the ping come this way too, marked by the parameter
//! `IMGWORKER_ENDPOINT` (`status` or `ping`) that only their locations in
//! the snippet set.
//!
//! Parameters read (the snippet `nginx/imgworker.conf` sets them):
//! `REQUEST_METHOD`; `DOCUMENT_URI`, Nginx's normalised `$uri`;
//! `HTTP_ACCEPT`; `IMGWORKER_CACHE_ROOT`, Nginx's idea of the cache root,
//! checked against ours; `IMGWORKER_CACHE_CONTROL`, the header Nginx gives
//! hits, so a miss gives the same.

use std::time::Instant;

use crate::cache::{Cache, CacheError, Pending, RenderLock, Stored};
use crate::error::Failure;
use crate::fastcgi;
use crate::glide;
use crate::scoreboard::Scoreboard;
use crate::signing::{self, SignatureError, Signer};
use crate::source::{Source, SourcePath};
use crate::status;
use crate::sys;
use crate::transform::output::Format;
use crate::transform::{self, OptionError, Options, Rules, Settings};

/// The URL prefix of the native API.
pub const PREFIX: &str = "/img/";

/// Used when Nginx does not pass `IMGWORKER_CACHE_CONTROL`.
const DEFAULT_CACHE_CONTROL: &str = "public, max-age=31536000";

/// What a worker needs to answer requests.
pub struct Context {
    pub source: Box<dyn Source>,
    pub cache: Cache,
    pub settings: Settings,
    pub rules: Rules,
    pub board: Scoreboard,
    pub pool_name: String,
    pub signer: Signer,
    pub glide_sign_key: Option<String>,
    /// A duplicate of the listening socket, to read its queue.
    pub listener: Option<std::os::unix::net::UnixListener>,
}

/// An answer, and what the log line says of it.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    /// Whether a derivative was made.
    pub rendered: bool,
    /// Whether it was made but could not be stored: served, but every
    /// request for it renders again, which the operator must hear of.
    pub unstored: bool,
    /// The log line's end, after the status, the time and the URI.
    note: String,
    /// The derivative's file, written but not yet where Nginx looks; see
    /// [`finish`].
    commit: Option<Commit>,
    /// The URI for the log, and when the request came in.
    uri: String,
    started: Instant,
    head: bool,
}

/// What [`finish`] still has to do for a new derivative: flush and name
/// its file, then let other workers waiting for it go on.
struct Commit {
    file: Pending,
    _lock: Option<RenderLock>,
}

impl Answer {
    fn new(
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        note: String,
    ) -> Answer {
        Answer {
            status,
            headers,
            body,
            rendered: false,
            unstored: false,
            note,
            commit: None,
            uri: String::new(),
            started: Instant::now(),
            head: false,
        }
    }

    pub fn header_pairs(&self) -> Vec<(&str, &str)> {
        self.headers.iter().map(|(k, v)| (*k, v.as_str())).collect()
    }

    /// Whether the derivative's file still has to be committed before
    /// this answer may go out.
    pub fn pending(&self) -> bool {
        self.commit.is_some()
    }

    /// The request's log line, after "request ".
    pub fn summary(&self) -> String {
        format!(
            "status={} ms={} uri={:?} {}",
            self.status,
            self.started.elapsed().as_millis(),
            self.uri,
            self.note
        )
    }
}

/// Answers one request.
pub fn answer(ctx: &Context, request: &fastcgi::Request) -> Answer {
    let started = Instant::now();
    let uri = match request.param("DOCUMENT_URI") {
        Some(bytes) => String::from_utf8_lossy(bytes).into_owned(),
        None => String::new(),
    };
    // For the log: the status page and the ping have no DOCUMENT_URI.
    let logged = match request.param("REQUEST_URI") {
        Some(bytes) if uri.is_empty() => {
            String::from_utf8_lossy(bytes).into_owned()
        }
        _ => uri.clone(),
    };
    let head = request.param_str("REQUEST_METHOD") == Some("HEAD");
    let endpoint = request.param_str("IMGWORKER_ENDPOINT");
    let method = request.param_str("REQUEST_METHOD").unwrap_or("");
    let reading = method == "GET" || method == "HEAD";
    let mut answer = match endpoint {
        Some("status") | Some("ping") if !reading => {
            refuse(&Failure::Method(method.to_string()))
        }
        Some("status") | Some("ping") => report(ctx, request, endpoint),
        _ => match make(ctx, request, &uri) {
            Ok(answer) => answer,
            Err(failure) => refuse(&failure),
        },
    };
    if head {
        answer.body.clear();
    }
    answer.uri = logged;
    answer.started = started;
    answer.head = head;
    answer
}

/// Makes a new derivative's file visible where Nginx looks, then gives
/// back the answer to send: the same, or the failure's if the file could
/// not be stored. Nginx is answered only once the file is in place, so
/// the client's next request for it is a hit.
pub fn finish(mut answer: Answer) -> Answer {
    let Some(commit) = answer.commit.take() else {
        return answer;
    };
    let flushing = Instant::now();
    let result = commit.file.commit();
    drop(commit._lock);
    let flush_ms = flushing.elapsed().as_millis();
    match result {
        Ok(_) => {
            answer.note =
                format!("cache=miss {} flush_ms={flush_ms}", answer.note);
            answer
        }
        // Answer anyway; this URL will be rendered every time.
        Err(err @ CacheError::Unstorable(..)) => {
            answer.headers.retain(|(name, _)| {
                *name != "ETag" && *name != "Last-Modified"
            });
            answer.note = format!(
                "cache=unstorable reason={:?} {}",
                err.to_string(),
                answer.note
            );
            answer.unstored = true;
            answer
        }
        Err(err) => {
            let mut failed = refuse(&Failure::Cache(err));
            if answer.head {
                failed.body.clear();
            }
            failed.uri = answer.uri;
            failed.started = answer.started;
            failed.head = answer.head;
            failed
        }
    }
}

fn make(
    ctx: &Context,
    request: &fastcgi::Request,
    uri: &str,
) -> Result<Answer, Failure> {
    // The method, and whether Nginx and we agree on the cache root.
    let method = request.param_str("REQUEST_METHOD").unwrap_or("");
    if method != "GET" && method != "HEAD" {
        return Err(Failure::Method(method.to_string()));
    }
    if let Some(nginx_root) = request.param_str("IMGWORKER_CACHE_ROOT") {
        let ours = ctx.cache.root();
        if std::path::Path::new(nginx_root.trim_end_matches('/')) != ours {
            return Err(Failure::Misconfigured(format!(
                "nginx serves hits from {nginx_root} but cache_root is {}; \
                 make them the same directory",
                ours.display()
            )));
        }
    }

    // The URL: /img/<options>/<path of the original>, rewritten by the
    // snippet from a Glide or TimThumb URL if `via` says so.
    let via = request.param_str("IMGWORKER_VIA");
    let (segment, path) = split_uri(uri).map_err(|failure| {
        // TimThumb's src was refused by the snippet (a remote URL, dot
        // segments, none): the rewritten /img/ URL would only confuse.
        match via {
            Some("timthumb") => Failure::BadPath {
                path: "/timthumb.php".to_string(),
                reason: "src: not the path of an original (remote URLs and \
                         dot segments are refused)",
            },
            _ => failure,
        }
    })?;
    // gs_ is Glide's signature, and only a Glide URL the snippet
    // translated may carry one; anywhere else it is an unknown option.
    let via_glide = via == Some("glide");
    let (segment, glide_signature) = if via_glide {
        signing::split_item(segment, "gs_")
    } else {
        (segment.to_string(), None)
    };
    let (segment, signature) = signing::split_signature(&segment);
    if via_glide {
        check_glide(ctx, request, glide_signature)?;
    } else if ctx.signer.enabled() {
        let canonical = signing::canonical(&segment, path.as_str());
        ctx.signer
            .verify(&canonical, signature)
            .map_err(Failure::Signature)?;
    }
    // Unchecked, any s_ value would be a new derivative: a free way to
    // fill the cache with copies of one image.
    if signature.is_some() && !via_glide && !ctx.signer.enabled() {
        return Err(Failure::Options(OptionError::new(
            "s",
            "URLs are not signed here (signing_keys is empty); remove the \
             s_ option",
        )));
    }
    let options =
        Options::parse_with(&segment, &ctx.rules).map_err(|err| {
            Failure::Options(in_legacy_terms(err, via, request, &segment))
        })?;
    let key =
        SourcePath::new(uri.trim_start_matches('/')).map_err(|reason| {
            Failure::BadPath { path: uri.to_string(), reason }
        })?;

    // One render per derivative: wait for a worker making it already,
    // then answer with its file if it made one.
    let accept = request.param_str("HTTP_ACCEPT").unwrap_or("");
    let lock = ctx.cache.lock(key.as_str()).map_err(|err| {
        log::warn!(
            "render lock failed uri={uri:?} error={:?}",
            err.to_string()
        )
    });
    let candidates = options.output.candidates(accept);
    let extensions: Vec<&str> =
        candidates.iter().map(|candidate| candidate.extension).collect();
    if let Some((index, bytes, stored)) =
        ctx.cache.existing(key.as_str(), &extensions)
    {
        let format = candidates[index].format;
        let note = format!(
            "cache=made-meanwhile format={} bytes={}",
            format.extension(),
            bytes.len()
        );
        let headers = derivative_headers(
            request,
            &options,
            format,
            bytes.len(),
            Some(stored),
        );
        return Ok(Answer::new(200, headers, bytes, note));
    }

    // The original, and the derivative.
    let original = ctx
        .source
        .fetch(&path)
        .map_err(|error| Failure::Source { path: path.to_string(), error })?;
    let derivative =
        transform::render(&original, &options, accept, &ctx.settings)
            .map_err(|error| Failure::Render {
                path: path.to_string(),
                error,
            })?;
    drop(original);

    // Written beside where Nginx looks next time; `finish` puts it there.
    let extension =
        options.output.extension(derivative.format, derivative.is_animation());
    let path = ctx.cache.path_of(key.as_str(), extension);
    let (pending, unstorable) = match ctx.cache.write(&path, &derivative.bytes)
    {
        Ok(pending) => (Some(pending), None),
        // Answer anyway; this URL will be rendered every time.
        Err(err @ CacheError::Unstorable(..)) => (None, Some(err)),
        Err(err) => return Err(Failure::Cache(err)),
    };

    let headers = derivative_headers(
        request,
        &options,
        derivative.format,
        derivative.bytes.len(),
        pending.as_ref().map(Pending::stored),
    );
    let mut note = format!(
        "src={}x{} out={}x{} format={} bytes={}",
        derivative.source_width,
        derivative.source_height,
        derivative.width,
        derivative.height,
        derivative.format.extension(),
        derivative.bytes.len()
    );
    if derivative.is_animation() {
        note = format!("{note} frames={}", derivative.frames);
    }
    let unstored = unstorable.is_some();
    if let Some(err) = unstorable {
        note = format!("cache=unstorable reason={:?} {note}", err.to_string());
    }
    let mut answer = Answer::new(200, headers, derivative.bytes, note);
    answer.rendered = true;
    answer.unstored = unstored;
    answer.commit = pending.map(|file| Commit { file, _lock: lock.ok() });
    Ok(answer)
}

/// The status page or the ping.
fn report(
    ctx: &Context,
    request: &fastcgi::Request,
    endpoint: Option<&str>,
) -> Answer {
    let page = if endpoint == Some("ping") {
        status::ping()
    } else {
        let extra = status::Extra {
            pool_name: &ctx.pool_name,
            listen_queue: ctx.listener.as_ref().and_then(sys::listen_queue),
        };
        let query = request.param_str("QUERY_STRING").unwrap_or("");
        status::render(&ctx.board, &extra, query)
    };
    let body = page.body.into_bytes();
    let headers = vec![
        ("Content-Type", page.content_type.to_string()),
        ("Content-Length", body.len().to_string()),
        ("Cache-Control", "no-store".to_string()),
    ];
    let note = format!("endpoint={}", endpoint.unwrap_or(""));
    Answer::new(200, headers, body, note)
}

/// A parameter of Glide or TimThumb: the native option the snippet's maps
/// turn it into (nginx/imgworker-http.conf), its name, and the values it
/// takes, in the client's terms.
struct Parameter {
    option: &'static str,
    name: &'static str,
    takes: &'static str,
}

const fn parameter(
    option: &'static str,
    name: &'static str,
    takes: &'static str,
) -> Parameter {
    Parameter { option, name, takes }
}

const PIXELS: &str = "a whole number of pixels";
const QUALITY: &str = "a quality from 1 to 100";

const GLIDE_PARAMETERS: &[Parameter] = &[
    parameter("w", "w", PIXELS),
    parameter("h", "h", PIXELS),
    parameter("q", "q", QUALITY),
    parameter(
        "fit",
        "fit",
        "contain, max, fill, fill-max, stretch, crop, cover, \
         crop-<position> or crop-<x%>-<y%>",
    ),
    // Only fit=crop-<x%>-<y%> makes a g_.
    parameter("g", "fit", "crop-<x%>-<y%> with x and y from 0 to 100"),
    parameter("dpr", "dpr", "a whole ratio from 1 to 8"),
    parameter("r", "or", "auto, 0, 90, 180 or 270"),
    parameter("flip", "flip", "h, v or both"),
    parameter("sharpen", "sharp", "a whole number from 0 to 100"),
    parameter("blur", "blur", "a whole number from 0 to 100"),
    parameter("bg", "bg", "a colour as 3 or 6 hex digits, white or black"),
    parameter("f", "fm", "jpg, pjpg, png, gif, webp or avif"),
    parameter("crop", "crop", "W,H,X,Y in whole pixels"),
    parameter("p", "p", "the name of a preset"),
];
const TIMTHUMB_PARAMETERS: &[Parameter] = &[
    parameter("w", "w", PIXELS),
    parameter("h", "h", PIXELS),
    parameter("q", "q", QUALITY),
    parameter("fit", "zc", "0, 1, 2 or 3"),
    parameter("g", "a", "c, t, b, l, r, tl, tr, bl or br"),
    parameter("sharpen", "s", "0 or 1"),
    parameter("bg", "cc", "a colour as 3 or 6 hex digits"),
];

/// A refused option of a translated Glide or TimThumb URL, told in the
/// client's terms. Where the client's value reached the option as written
/// (w=50000 as w_50000), the option's own reason holds, under the
/// parameter's name. Where the snippet's maps made something else of it
/// (a value of the wrong shape becomes the word "invalid", so that no
/// client text reaches the path; fit=crop-120-50 becomes g_fp-120-50),
/// that reason would speak of a value the client never sent: the answer
/// says what the parameter takes instead.
fn in_legacy_terms(
    err: OptionError,
    via: Option<&str>,
    request: &fastcgi::Request,
    segment: &str,
) -> OptionError {
    let table = match via {
        Some("glide") => GLIDE_PARAMETERS,
        Some("timthumb") => TIMTHUMB_PARAMETERS,
        _ => return err,
    };
    let Some(parameter) = table.iter().find(|p| p.option == err.key()) else {
        return err;
    };
    let sent = request.param_str("REQUEST_URI").unwrap_or("");
    let query = sent.split_once('?').map_or("", |(_, query)| query);
    // Nginx's $arg_ reads the first occurrence, as written.
    let value = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(parameter.name)?.strip_prefix('='))
        .unwrap_or("");
    let translated = segment.split(',').find_map(|item| {
        item.strip_prefix(parameter.option)?.strip_prefix('_')
    });
    if translated == Some(value) {
        err.renamed(parameter.name)
    } else {
        OptionError::new(
            parameter.name,
            format!("{value:?} is not {}", parameter.takes),
        )
    }
}

/// Checks a translated Glide URL's signature against the URL the client
/// sent (`REQUEST_URI`), as Glide would.
fn check_glide(
    ctx: &Context,
    request: &fastcgi::Request,
    given: Option<&str>,
) -> Result<(), Failure> {
    let Some(key) = &ctx.glide_sign_key else {
        if ctx.signer.enabled() {
            return Err(Failure::Signature(SignatureError::GlideUnsignable));
        }
        // As with s_: unchecked, each value would be one more file.
        if given.is_some() {
            return Err(Failure::Options(OptionError::new(
                "s",
                "Glide signatures are not checked here (glide_sign_key is \
                 not set); set it, or drop s from the URLs",
            )));
        }
        return Ok(());
    };
    let sent = request.param_str("REQUEST_URI").unwrap_or("");
    let (path, query) = sent.split_once('?').unwrap_or((sent, ""));
    match given {
        None => Err(Failure::Signature(SignatureError::GlideMissing)),
        Some(given) if glide::verify(key, path, query, given) => Ok(()),
        Some(_) => Err(Failure::Signature(SignatureError::Wrong)),
    }
}

/// The headers of a derivative, the ones Nginx gives its file as a hit.
fn derivative_headers(
    request: &fastcgi::Request,
    options: &Options,
    format: Format,
    len: usize,
    stored: Option<Stored>,
) -> Vec<(&'static str, String)> {
    let cache_control = request
        .param_str("IMGWORKER_CACHE_CONTROL")
        .unwrap_or(DEFAULT_CACHE_CONTROL);
    let mut headers = vec![
        ("Content-Type", format.mime_type().to_string()),
        ("Content-Length", len.to_string()),
        ("Cache-Control", cache_control.to_string()),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("X-Imgworker", "miss".to_string()),
    ];
    if let Some(stored) = stored {
        headers.push(("ETag", stored.etag()));
        headers.push(("Last-Modified", stored.last_modified()));
    }
    if options.output.varies_with_accept() {
        headers.push(("Vary", "Accept".to_string()));
    }
    headers
}

/// Splits `/img/<options>/<path>` into the options segment and the path
/// of the original.
fn split_uri(uri: &str) -> Result<(&str, SourcePath), Failure> {
    let bad = |reason| Failure::BadPath { path: uri.to_string(), reason };
    let rest =
        uri.strip_prefix(PREFIX).ok_or_else(|| bad("not an imgworker URL"))?;
    let (segment, path) = rest.split_once('/').ok_or_else(|| {
        bad("expected /img/<options>/<path of the original>")
    })?;
    let path = SourcePath::new(path).map_err(bad)?;
    Ok((segment, path))
}

/// The answer to a failed request: its status and one line of text, and
/// never cached for long.
fn refuse(failure: &Failure) -> Answer {
    let status = failure.status();
    let mut body = failure.public_reason().into_bytes();
    body.push(b'\n');
    let mut headers = vec![
        ("Content-Type", "text/plain; charset=utf-8".to_string()),
        ("Content-Length", body.len().to_string()),
        ("Cache-Control", "no-store".to_string()),
        ("X-Content-Type-Options", "nosniff".to_string()),
        ("X-Imgworker", "miss".to_string()),
    ];
    if status == 503 {
        headers.push(("Retry-After", "10".to_string()));
    }
    if status == 405 {
        headers.push(("Allow", "GET, HEAD".to_string()));
    }
    Answer::new(status, headers, body, format!("error={:?}", failure.detail()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_splits_into_options_and_path() {
        let (segment, path) =
            split_uri("/img/w_300,f_webp/photos/a.jpg").unwrap();
        assert_eq!(segment, "w_300,f_webp");
        assert_eq!(path.as_str(), "photos/a.jpg");
    }

    #[test]
    fn urls_that_cannot_name_an_original_are_404() {
        for uri in
            ["/other/w_1/a.jpg", "/img/w_1", "/img/w_1/", "/img/w_1/../x.jpg"]
        {
            let failure = split_uri(uri).unwrap_err();
            assert_eq!(failure.status(), 404, "{uri}");
        }
    }
}
