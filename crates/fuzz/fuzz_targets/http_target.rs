//! The HTTP target check: `HttpTarget::parse(target)`, then `.admits(url)`.
//!
//! The input is the target, a newline, and the URL. Property: a URL judged inside the
//! target stays inside however a naive or hostile server reads its path. The server
//! model below is independent of `HttpTarget`: it takes the path the client sends,
//! optionally percent-decodes it once or twice, treats `\` as `/`, drops `;params` from
//! segments (as Tomcat does), merges empty segments (as nginx does), and resolves `.` and
//! `..`; every such reading of an admitted URL must still lie under the same reading of
//! the target's path, at a segment boundary, on the same scheme, host and port.
#![no_main]

use libfuzzer_sys::fuzz_target;
use onex_host::contract::HttpTarget;
use url::Url;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((target_text, candidate)) = text.split_once('\n') else {
        return;
    };
    let Ok(target) = HttpTarget::parse(target_text) else {
        return;
    };
    if !target.admits(candidate) {
        return;
    }
    let (Ok(base), Ok(url)) = (Url::parse(target.as_str()), Url::parse(candidate)) else {
        panic!("admitted, but the target or the URL does not parse");
    };
    assert_eq!(url.scheme(), base.scheme(), "{candidate}");
    assert_eq!(url.host(), base.host(), "{candidate}");
    assert_eq!(
        url.port_or_known_default(),
        base.port_or_known_default(),
        "{candidate}"
    );
    for decodes in 0..=2 {
        for backslash in [false, true] {
            for params in [false, true] {
                for merge in [false, true] {
                    let read = |path: &str| {
                        let mut path = path.as_bytes().to_vec();
                        for _ in 0..decodes {
                            path = percent_decode(&path);
                        }
                        resolve(&path, backslash, params, merge)
                    };
                    let (inside, seen) = (read(base.path()), read(url.path()));
                    assert!(
                        seen.starts_with(&inside),
                        "target {target} admits {candidate}, which a server that decodes \
                         {decodes} time(s), backslash={backslash}, params={params}, \
                         merge={merge} reads as {}, outside {}",
                        show(&seen),
                        show(&inside),
                    );
                }
            }
        }
    }
});

/// `%XX` to the byte it stands for; anything else, malformed escapes included, as it is.
fn percent_decode(path: &[u8]) -> Vec<u8> {
    let hex = |b: u8| (b as char).to_digit(16);
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        match (
            path[i],
            path.get(i + 1).copied().and_then(hex),
            path.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(high), Some(low)) => {
                out.push((high * 16 + low) as u8);
                i += 3;
            }
            (byte, _, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

/// The path's segments after dot segments are resolved, as a server reading it would; a
/// trailing empty segment (`/a/`) is dropped, so that a prefix of segments is "under".
fn resolve(path: &[u8], backslash: bool, params: bool, merge: bool) -> Vec<Vec<u8>> {
    let path: Vec<u8> = path
        .iter()
        .map(|&b| if backslash && b == b'\\' { b'/' } else { b })
        .collect();
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for segment in path.split(|&b| b == b'/').skip(1) {
        let segment = match segment.iter().position(|&b| b == b';') {
            Some(at) if params => &segment[..at],
            _ => segment,
        };
        match segment {
            b"." => {}
            b".." => {
                segments.pop();
            }
            b"" if merge => {}
            _ => segments.push(segment.to_vec()),
        }
    }
    if segments.last().is_some_and(Vec::is_empty) {
        segments.pop();
    }
    segments
}

fn show(segments: &[Vec<u8>]) -> String {
    let segments: Vec<_> = segments
        .iter()
        .map(|s| String::from_utf8_lossy(s))
        .collect();
    format!("/{}", segments.join("/"))
}
