<?php
// imgworker-sign.php: signs imgworker URLs from a PHP site.
//
// Copy this file into the site and call imgworker_sign() wherever a
// template builds an image URL. The key is the first of imgworker's
// signing_keys; keep it out of the web root and out of version control.
//
//     require 'imgworker-sign.php';
//     echo imgworker_sign('/img/w_300,f_webp/photos/a.jpg', $key);
//     // /img/w_300,f_webp,s_<22 characters>/photos/a.jpg
//     echo imgworker_sign('https://cdn.example.com/img/w_300/photos/a.jpg', $key);
//
// The signature is HMAC-SHA256 over "<options>/<path>" as the server sees
// them (percent-decoded), its first 16 bytes in base64url without padding,
// added to the options as s_… (see imgworker's src/signing.rs, which must
// agree with this file). A query string is kept but not signed.

function imgworker_sign(string $url, string $key): string
{
    $parts = parse_url($url);
    $path = $parts['path'] ?? '';
    if (!preg_match('#^/([^/]+)/([^/]+)/(.+)$#', $path, $m)) {
        throw new InvalidArgumentException(
            "$url: expected /<prefix>/<options>/<path of the original>"
        );
    }
    [, $prefix, $options, $original] = $m;
    $canonical = rawurldecode($options) . '/' . rawurldecode($original);
    $mac = hash_hmac('sha256', $canonical, $key, true);
    $signature = rtrim(strtr(base64_encode(substr($mac, 0, 16)), '+/', '-_'), '=');

    $origin = isset($parts['host'])
        ? ($parts['scheme'] ?? 'https') . '://' . $parts['host']
            . (isset($parts['port']) ? ':' . $parts['port'] : '')
        : '';
    $query = isset($parts['query']) ? '?' . $parts['query'] : '';
    return "$origin/$prefix/$options,s_$signature/$original$query";
}
