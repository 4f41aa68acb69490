//! Every way a request can fail, each with its HTTP status and the short
//! reason a client may read.
//!
//! The areas keep their own error types (`source`, `transform`, `cache`);
//! [`Failure`] gathers them so the request path decides each status on
//! purpose. The public reason never names the roots or other paths of the
//! machine, only the path the client asked for; the log line may say more.

use crate::cache::CacheError;
use crate::signing::SignatureError;
use crate::source::SourceError;
use crate::transform::{OptionError, RenderError};

/// A request that ends without a derivative.
#[derive(Debug)]
pub enum Failure {
    /// Not GET or HEAD.
    Method(String),
    /// Not a URL of ours, or a path that can never name an original.
    BadPath {
        path: String,
        reason: &'static str,
    },
    /// The options segment does not parse.
    Options(OptionError),
    /// Signing is on and the URL's signature is missing or wrong.
    Signature(SignatureError),
    Source {
        path: String,
        error: SourceError,
    },
    Render {
        path: String,
        error: RenderError,
    },
    Cache(CacheError),
    /// Nginx and imgworker disagree about the deployment.
    Misconfigured(String),
}

impl Failure {
    pub fn status(&self) -> u16 {
        match self {
            Failure::Method(_) => 405,
            Failure::BadPath { .. } => 404,
            Failure::Options(_) => 400,
            Failure::Signature(_) => 403,
            Failure::Source { error, .. } => match error {
                SourceError::NotFound => 404,
                SourceError::Refused => 403,
                SourceError::TooLarge { .. } => 422,
                SourceError::Io(_) => 500,
            },
            Failure::Render { error, .. } => match error {
                RenderError::UnknownFormat
                | RenderError::Unsupported(_)
                | RenderError::NotEnabled(_) => 415,
                RenderError::TooManyPixels { .. } => 422,
                RenderError::TooManyFrames { .. } => 422,
                RenderError::OutputTooLarge { .. } => 400,
                RenderError::TooLargeForFormat { .. } => 400,
                RenderError::Crop(_) => 400,
                RenderError::Undecodable(_) => 422,
                RenderError::Internal(_) => 500,
            },
            Failure::Cache(CacheError::Full(_)) => 503,
            Failure::Cache(CacheError::Io(..)) => 500,
            Failure::Cache(CacheError::Unstorable(..)) => 500,
            Failure::Misconfigured(_) => 500,
        }
    }

    /// One line for the client: what failed, never how the machine is laid
    /// out.
    pub fn public_reason(&self) -> String {
        match self {
            Failure::Method(method) => format!("{method}: only GET and HEAD"),
            // The path is the client's own, and may hold line breaks.
            Failure::BadPath { path, reason } => {
                format!("{}: {reason}", path.escape_debug())
            }
            Failure::Options(err) => format!("bad option: {err}"),
            Failure::Signature(err) => err.to_string(),
            Failure::Source { path, error } => match error {
                SourceError::Io(_) => format!("{path}: cannot read original"),
                error => format!("{path}: {error}"),
            },
            Failure::Render { path, error } => {
                format!("{path}: {}", render_reason(error))
            }
            Failure::Cache(CacheError::Full(_)) => {
                "cache is full, try again later".to_string()
            }
            Failure::Cache(_) => "cannot store the derivative".to_string(),
            Failure::Misconfigured(_) => "server misconfigured".to_string(),
        }
    }

    /// The whole story, for the log.
    pub fn detail(&self) -> String {
        match self {
            Failure::Cache(err) => err.to_string(),
            Failure::Misconfigured(reason) => reason.clone(),
            Failure::Source { path, error } => format!("{path}: {error}"),
            Failure::Render { path, error: RenderError::Internal(err) } => {
                format!("{path}: {err}")
            }
            // The operator reads what to change; the client does not.
            Failure::Render { path, error: RenderError::NotEnabled(name) } => {
                format!(
                    "{path}: {} originals are not supported; add {name:?} \
                     to input_formats to take them",
                    name.to_ascii_uppercase()
                )
            }
            other => other.public_reason(),
        }
    }
}

fn render_reason(error: &RenderError) -> String {
    match error {
        RenderError::UnknownFormat => "not an image in a known format".into(),
        RenderError::Unsupported(format) => {
            format!("{format} originals are not supported")
        }
        RenderError::NotEnabled(name) => {
            format!(
                "{} originals are not supported",
                name.to_ascii_uppercase()
            )
        }
        RenderError::TooManyPixels { width, height, limit } => format!(
            "original is {width}x{height}, over the limit of {limit} pixels"
        ),
        RenderError::TooManyFrames { frames, limit } => {
            format!("animation has {frames} frames, over the limit of {limit}")
        }
        RenderError::Crop(err) => format!("bad option: {err}"),
        RenderError::TooLargeForFormat { format, width, height } => format!(
            "{} holds at most {} pixels a side, and the derivative would be \
             {width}x{height}; ask for a smaller size or another format",
            format.extension().to_ascii_uppercase(),
            format.max_side()
        ),
        RenderError::OutputTooLarge { width, height, limit } => format!(
            "the derivative would be {width}x{height}, over the limit of \
             {limit} pixels; ask for a smaller w_ or h_"
        ),
        RenderError::Undecodable(err) => {
            format!("damaged or unreadable image ({})", err.message)
        }
        RenderError::Internal(_) => "could not make the derivative".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_its_status() {
        let missing = Failure::Source {
            path: "a.jpg".into(),
            error: SourceError::NotFound,
        };
        assert_eq!(missing.status(), 404);
        assert_eq!(missing.public_reason(), "a.jpg: no such original");
        let escape = Failure::Source {
            path: "out.jpg".into(),
            error: SourceError::Refused,
        };
        assert_eq!(escape.status(), 403);
        let junk = Failure::Render {
            path: "x.jpg".into(),
            error: RenderError::UnknownFormat,
        };
        assert_eq!(junk.status(), 415);
        let full = Failure::Cache(CacheError::Full("/c/x".into()));
        assert_eq!(full.status(), 503);
        assert!(!full.public_reason().contains("/c/x"));
    }
}
