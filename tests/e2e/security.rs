//! Abuse: signed URLs, the signature's keys and their rotation.

use std::process::Command;

use crate::harness::{Server, corpus};

const NEW_KEY: &str = "new-key-0123456789abcdef0123456789";
const OLD_KEY: &str = "old-key-0123456789abcdef0123456789";
const URL: &str = "/img/w_80,f_webp/photos/flickr-saw-2725x2225.jpg";

/// `imgworker sign` with the keys of `config`.
fn sign(server: &Server, url: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_imgworker"))
        .args(["sign", "--config"])
        .arg(server.config_path())
        .arg(url)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

fn keys(server: &Server, keys: &[&str]) {
    let list: Vec<String> = keys.iter().map(|k| format!("{k:?}")).collect();
    std::fs::write(
        server.config_path(),
        format!("workers = 2\nsigning_keys = [{}]\n", list.join(", ")),
    )
    .unwrap();
}

#[test]
fn signed_urls_good_missing_wrong_old_key_and_removed_key() {
    let keyed = format!("signing_keys = [{OLD_KEY:?}]\n");
    let server = Server::start_configured(&corpus(), 2, &keyed);
    let old_signed = sign(&server, URL);
    assert!(old_signed.starts_with("/img/w_80,f_webp,s_"), "{old_signed}");

    // Good.
    let reply = server.get(&old_signed);
    assert_eq!(reply.status, 200, "{}", reply.text());
    // Missing, and wrong: refused before anything is decoded.
    let missing = server.get(URL);
    assert_eq!(missing.status, 403);
    assert_eq!(missing.text(), "URL is not signed (s_ option missing)\n");
    let wrong = server.get(&old_signed.replace(",s_", ",s_x"));
    assert_eq!(wrong.status, 403);
    let tampered = server.get(&old_signed.replace("w_80", "w_81"));
    assert_eq!(tampered.status, 403, "options are covered");

    // Rotation: a new key in front, the old one still accepted.
    keys(&server, &[NEW_KEY, OLD_KEY]);
    server.signal(nix::sys::signal::Signal::SIGHUP);
    server
        .wait_for(|s| s.log().contains("reloaded generation=2"), "the reload");
    let new_signed = sign(&server, &URL.replace("w_80", "w_82"));
    assert_eq!(server.get(&new_signed).status, 200);
    assert_eq!(server.get(&old_signed).header("x-imgworker"), Some("hit"));
    let old_fresh = {
        // A URL signed with the old key that is not cached yet.
        let old_only =
            Server::signer_url(OLD_KEY, &URL.replace("w_80", "w_83"));
        server.get(&old_only)
    };
    assert_eq!(old_fresh.status, 200, "old key still accepted");

    // Removed: the old key no longer signs new work.
    keys(&server, &[NEW_KEY]);
    server.signal(nix::sys::signal::Signal::SIGHUP);
    server
        .wait_for(|s| s.log().contains("reloaded generation=3"), "the reload");
    let removed = Server::signer_url(OLD_KEY, &URL.replace("w_80", "w_84"));
    assert_eq!(server.get(&removed).status, 403);
    assert!(!server.log().contains("panicked"));
}
