//! A real browser: headless Chromium (Debian's `chromium`) loads a page of
//! `<img>` and `srcset` elements pointing at `f_auto` URLs. Every image
//! must decode, and Chromium, which takes AVIF, must be sent AVIF.

use std::process::Command;

use crate::harness::{Server, corpus};

const PHOTOS: [&str; 4] = [
    "photos/flickr-saw-2725x2225.jpg",
    "photos/iphonexs-p3-orient6-4032x3024.jpg",
    "alpha/rgba-clover-512x512.png",
    "formats/gif-hopper-128x128.gif",
];

/// Loads `page` and returns the text the page's script leaves in #result.
fn load(page: &std::path::Path, profile: &std::path::Path) -> String {
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium is installed (scripts/install-deps)");
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    let start = dom.find("<pre id=\"result\">").map(|i| i + 17).unwrap_or(0);
    let end = dom[start..].find("</pre>").map(|i| start + i).unwrap_or(start);
    dom[start..end].to_string()
}

#[test]
fn chromium_decodes_every_image_and_is_sent_avif() {
    let server = Server::start(&corpus());
    let base = format!("http://127.0.0.1:{}", server.port);
    let mut images = String::new();
    for photo in PHOTOS {
        images.push_str(&format!(
            "<img src=\"{base}/img/w_240,f_auto/{photo}\">\n"
        ));
        images.push_str(&format!(
            "<img srcset=\"{base}/img/w_160,f_auto/{photo} 1x, \
             {base}/img/w_320,f_auto/{photo} 2x\" src=\"{base}/img/w_160/{photo}\">\n"
        ));
    }
    let page = format!(
        "<!doctype html><html><body>\n{images}<pre id=\"result\">pending</pre>\n\
         <script>\n\
         window.addEventListener('load', () => {{\n\
           const all = [...document.images];\n\
           const ok = all.filter(i => i.complete && i.naturalWidth > 0);\n\
           document.getElementById('result').textContent =\n\
             ok.length + '/' + all.length;\n\
         }});\n\
         </script></body></html>\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let page_path = dir.path().join("page.html");
    std::fs::write(&page_path, page).unwrap();
    let profile = dir.path().join("profile");

    let total = PHOTOS.len() * 2;
    assert_eq!(
        load(&page_path, &profile),
        format!("{total}/{total}"),
        "every image decoded"
    );
    let lines = server.request_lines();
    let auto: Vec<&String> =
        lines.iter().filter(|l| l.contains("f_auto")).collect();
    assert_eq!(auto.len(), total, "each f_auto image made once:\n{lines:#?}");
    for line in auto {
        assert!(line.contains("format=avif"), "Chromium takes AVIF: {line}");
    }

    // A second visit: every image a hit, none made again.
    assert_eq!(
        load(&page_path, &profile.with_extension("2")),
        format!("{total}/{total}")
    );
    assert_eq!(
        server.request_lines().len(),
        lines.len(),
        "no worker saw the second visit"
    );
}
