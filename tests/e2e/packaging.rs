//! The Debian package: `cargo deb` builds it, and it holds the binary, the
//! units, the Nginx snippets, the example config and the scripts that
//! create the service user.

use std::path::Path;
use std::process::Command;

#[test]
fn the_deb_installs_everything_a_sysadmin_needs() {
    let project = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    // A target directory of its own, so the nested build does not wait on
    // the one running these tests.
    let build = Command::new("cargo")
        .current_dir(project)
        .env("CARGO_TARGET_DIR", project.join("target/package-test"))
        .args(["deb", "--locked", "--output"])
        .arg(out.path())
        .output()
        .expect("cargo runs");
    assert!(
        build.status.success(),
        "cargo deb failed (scripts/test installs cargo-deb):\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let deb = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("a .deb was written");

    let listing =
        Command::new("dpkg-deb").arg("--contents").arg(&deb).output().unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    for file in [
        "./usr/bin/imgworker",
        "./etc/imgworker/imgworker.toml",
        "./etc/nginx/snippets/imgworker.conf",
        "./etc/nginx/conf.d/imgworker-http.conf",
        "./lib/systemd/system/imgworker.service",
        "./lib/systemd/system/imgworker.socket",
        "./lib/systemd/system/imgworker-sweep.service",
        "./lib/systemd/system/imgworker-sweep.timer",
        "./usr/share/doc/imgworker/README.md",
        "./usr/share/doc/imgworker/SIGNALS.md",
        "./usr/share/imgworker/contrib/imgworker-sign.php",
    ] {
        assert!(
            listing.lines().any(|l| l.ends_with(file)),
            "{file} in:\n{listing}"
        );
    }
    let binary =
        listing.lines().find(|l| l.ends_with("./usr/bin/imgworker")).unwrap();
    assert!(binary.starts_with("-rwxr-xr-x"), "{binary}");

    let info =
        Command::new("dpkg-deb").arg("--info").arg(&deb).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(info.contains("Package: imgworker"), "{info}");
    assert!(info.contains("libvips"), "depends on libvips: {info}");
    assert!(info.contains("adduser"), "{info}");
    let control = tempfile::tempdir().unwrap();
    let status = Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(control.path())
        .status()
        .unwrap();
    assert!(status.success());
    let postinst =
        std::fs::read_to_string(control.path().join("postinst")).unwrap();
    assert!(postinst.contains("adduser --system --group"), "{postinst}");
    assert!(
        postinst.contains("chgrp imgworker /etc/imgworker/imgworker.toml")
    );
    let conffiles =
        std::fs::read_to_string(control.path().join("conffiles")).unwrap();
    assert!(
        conffiles.contains("/etc/imgworker/imgworker.toml"),
        "{conffiles}"
    );
}
