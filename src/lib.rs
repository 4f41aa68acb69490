//! imgworker: an image server that sits behind Nginx over FastCGI.
//!
//! Nginx serves finished derivatives from a cache tree on disk; only a miss
//! reaches imgworker. The request's path through the crate: [`master`]
//! owns the socket and the worker processes; each [`worker`] accepts a
//! connection, reads it with [`fastcgi`], and hands it to [`request`],
//! which reads the original from a [`source`], renders it with
//! [`transform`] (whose only door to libvips is [`vips`]), stores it with
//! [`cache`], and answers. [`sys`] holds the raw system calls.

pub mod cache;
pub mod config;
pub mod error;
pub mod fastcgi;
pub mod glide;
pub mod listener;
pub mod logging;
pub mod master;
pub mod request;
pub mod scoreboard;
pub mod signing;
pub mod source;
pub mod status;
pub mod sweep;
pub mod sys;
pub mod transform;
pub mod vips;
pub mod worker;
