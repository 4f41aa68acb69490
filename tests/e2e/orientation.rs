//! Every EXIF orientation in the corpus comes out upright: each of
//! `landscape-2..8` and `portrait-2..8` matches orientation 1, pixel for
//! pixel within a tolerance, at the upright size.

use crate::harness::{Server, corpus};
use crate::images::{decode, mean_difference};

/// Mean difference per channel allowed between two JPEG encodings of the
/// same picture; a wrong rotation or mirror gives well over 30.
const TOLERANCE: f64 = 6.0;

fn check_family(server: &Server, family: &str, upright: (u32, u32)) {
    let get = |n: u32| {
        let reply = server
            .get(&format!("/img/w_300,f_png/orientation/{family}-{n}.jpg"));
        assert_eq!(reply.status, 200, "{family}-{n}: {}", reply.text());
        decode(&reply)
    };
    let reference = get(1);
    assert_eq!((reference.width, reference.height), upright);
    let reference = reference.image.unwrap();
    for n in [0, 2, 3, 4, 5, 6, 7, 8] {
        let candidate = get(n);
        assert_eq!(
            (candidate.width, candidate.height),
            upright,
            "{family}-{n} has the upright size"
        );
        let difference =
            mean_difference(&reference, &candidate.image.unwrap());
        assert!(
            difference < TOLERANCE,
            "{family}-{n} differs from {family}-1 by {difference:.1} per channel"
        );
    }
}

#[test]
fn landscape_orientations_come_out_upright() {
    let server = Server::start(&corpus());
    check_family(&server, "landscape", (300, 200));
}

#[test]
fn portrait_orientations_come_out_upright() {
    let server = Server::start(&corpus());
    check_family(&server, "portrait", (300, 450));
}

#[test]
fn a_phone_photo_stored_sideways_is_a_portrait() {
    let server = Server::start(&corpus());
    for photo in [
        "photos/iphonexs-p3-orient6-4032x3024.jpg",
        "photos/samsung-note10-orient6-4032x3024.jpg",
    ] {
        let image = decode(&server.get(&format!("/img/w_600/{photo}")));
        assert_eq!((image.width, image.height), (600, 800), "{photo}");
    }
}
