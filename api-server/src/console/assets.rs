//! The console's files, embedded at build time (`build.rs` lists `console/`), each prepared once:
//! its content type, an ETag from its SHA-256, and a gzip copy when that is smaller. A request is
//! answered `304` when its `If-None-Match` names the ETag, and gets the gzip copy when it accepts
//! gzip; everything is revalidated on each load (`no-cache`), so a new build is seen at once.

use std::sync::LazyLock;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

/// Every file under `console/`, by its path there (`index.html`, `assets/app.js`, …).
const FILES: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/console_files.rs"));

/// The page every console path is answered with (the script routes by the address).
pub(crate) const INDEX: &str = "index.html";

/// A file ready to serve.
struct Asset {
    path: &'static str,
    plain: &'static [u8],
    gzip: Option<Vec<u8>>,
    content_type: HeaderValue,
    etag: HeaderValue,
}

static ASSETS: LazyLock<Vec<Asset>> = LazyLock::new(|| FILES.iter().map(prepare).collect());

fn prepare(&(path, plain): &(&'static str, &'static [u8])) -> Asset {
    let digest = hex::encode(Sha256::digest(plain));
    let gzip = gzip(plain);
    Asset {
        path,
        plain,
        gzip: (gzip.len() < plain.len()).then_some(gzip),
        content_type: HeaderValue::from_static(content_type(path)),
        etag: HeaderValue::from_str(&format!("\"{}\"", &digest[..32])).expect("hex is a header"),
    }
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

/// A gzip member (RFC 1952) of `data`: header, raw deflate, CRC-32 and length.
fn gzip(data: &[u8]) -> Vec<u8> {
    const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
    // Magic, deflate, no flags, no mtime, maximum compression, unknown OS.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 255];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 9));
    out.extend(CRC32.checksum(data).to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952 §2.3.1).
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// The embedded file at `path`, answered for this request (`None`: no such file).
pub(crate) fn serve(path: &str, request: &HeaderMap) -> Option<Response> {
    let asset = ASSETS.iter().find(|a| a.path == path)?;
    let mut response = if request
        .get(header::IF_NONE_MATCH)
        .is_some_and(|tags| matches(tags, &asset.etag))
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        match &asset.gzip {
            Some(gzip) if accepts_gzip(request) => {
                let mut r = Body::from(gzip.clone()).into_response();
                r.headers_mut()
                    .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                r
            }
            _ => Body::from(asset.plain).into_response(),
        }
    };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, asset.content_type.clone());
    headers.insert(header::ETAG, asset.etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    Some(response)
}

/// Whether an `If-None-Match` list names `etag` (or is `*`).
fn matches(tags: &HeaderValue, etag: &HeaderValue) -> bool {
    let want = etag.as_bytes();
    tags.to_str().is_ok_and(|tags| {
        tags.split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t.as_bytes() == want)
    })
}

/// Whether `Accept-Encoding` admits gzip (not refused with `q=0`).
fn accepts_gzip(request: &HeaderMap) -> bool {
    request
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

/// The paths and byte sizes (plain, as sent with gzip) of every file (for tests and the docs'
/// first-load figure).
pub fn sizes() -> Vec<(&'static str, usize, usize)> {
    ASSETS
        .iter()
        .map(|a| {
            let sent = a.gzip.as_ref().map_or(a.plain.len(), Vec::len);
            (a.path, a.plain.len(), sent)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_copies_inflate_back_to_the_file() {
        let data = b"console console console console console console".repeat(20);
        let member = gzip(&data);
        let body = &member[10..member.len() - 8];
        let inflated = miniz_oxide::inflate::decompress_to_vec(body).expect("valid deflate");
        assert_eq!(inflated, data);
        let crc = u32::from_le_bytes(
            member[member.len() - 8..member.len() - 4]
                .try_into()
                .expect("four bytes"),
        );
        assert_eq!(
            crc,
            crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(&data)
        );
    }

    #[test]
    fn accept_encoding_is_read_with_its_weights() {
        let with = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_static(v));
            accepts_gzip(&h)
        };
        assert!(with("gzip, deflate, br"));
        assert!(with("br;q=1.0, GZIP;q=0.5"));
        assert!(with("*"));
        assert!(!with("gzip;q=0, br"));
        assert!(!with("br, deflate"));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn etags_match_plain_weak_and_listed_forms() {
        let etag = HeaderValue::from_static("\"abc\"");
        assert!(matches(&HeaderValue::from_static("\"abc\""), &etag));
        assert!(matches(
            &HeaderValue::from_static("\"x\", W/\"abc\""),
            &etag
        ));
        assert!(matches(&HeaderValue::from_static("*"), &etag));
        assert!(!matches(&HeaderValue::from_static("\"abd\""), &etag));
    }

    #[test]
    fn every_file_has_a_known_type_and_the_page_exists() {
        assert!(
            FILES.iter().any(|(p, _)| *p == INDEX),
            "console/index.html is missing"
        );
        for (path, _) in FILES {
            assert_ne!(content_type(path), "application/octet-stream", "{path}");
        }
    }
}
