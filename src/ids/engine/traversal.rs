//! Path traversal: dot-dot segments (after decoding), sensitive absolute paths,
//! NUL-terminated file names, PHP stream wrappers and NTFS alternate data streams.

use super::{Class, Hit};
use regex::Regex;
use std::sync::OnceLock;

struct Rx {
    dotdot: Regex,
    dotdot_weird: Regex,
    sensitive: Regex,
    nul_ext: Regex,
    file_url: Regex,
    web_inf: Regex,
    wrapper: Regex,
    etc_probe: Regex,
    ntfs_stream: Regex,
    metadata: Regex,
}

fn rx() -> &'static Rx {
    static R: OnceLock<Rx> = OnceLock::new();
    R.get_or_init(|| Rx {
        dotdot: Regex::new(r#"(?:^|[/\\=:'"\s;,|&(\x00*?]|\.\.)\.{2,}[\x00]*(?:[/\\]|;/)(?:[^\s]|$)"#).unwrap(),
        dotdot_weird: Regex::new(r"(?i)\.\.(?:0x2f|0x5c|%2f|%5c|/%2e|\?|%u[0-9a-f]{4}|%(?:25|c0|c1|e0|f0)|[\x{E000}-\x{F8FF}])|0x2e0x2e|(?:\.[/\\]){3,}|\.(?:/\\|\\/)|(?:^|[/\\])\.\.$").unwrap(),
        sensitive: Regex::new(r"(?i)(?:^|[/\\:=\s'\x22]|\.\.)(?:(?:var[/\\])?run[/\\]secrets[/\\](?:kubernetes\.io|eks\.amazonaws\.com)[/\\]|etc[/\\](?:passwd|shadow|group|hosts|issue|motd|master\.passwd|sudoers|crontab|ssh/|mysql/|apache2?/|httpd/|nginx/|php\.ini|fstab|resolv\.conf|security/)|proc[/\\](?:self|\d+)[/\\]|var[/\\](?:log|www|mail|spool|lib/mysql)[/\\]|root[/\\]|\.ssh[/\\]|id_[rd]sa|\.bash_history|\.htpasswd|\.htaccess|web\.config|wp-config\.php|boot\.ini|win\.ini|system\.ini|windows[/\\]system32|winnt[/\\]|system32[/\\](?:config|drivers)|inetpub[/\\]|global\.asax?|config\.sys|autoexec\.bat|desktop\.ini|sam$|repair[/\\]sam)").unwrap(),
        nul_ext: Regex::new(r"(?i)\.[a-z0-9]{1,6}\x00|\x00\.?[a-z0-9]{1,6}$|\x00[/\\]").unwrap(),
        file_url: Regex::new(r"(?i)(?-u:\b)file:(?://|\\\\)").unwrap(),
        web_inf: Regex::new(r"(?i)web-inf[/\\]").unwrap(),
        // PHP stream wrappers that read or run files (php://filter chains; php://input and the
        // others, expect://, phar://, zip://a#b, compress.zlib://, glob://, rar:// as a value, not
        // named in prose), and a data: URL whose base64 opens with `<?php` or `<?=` (not `<?xml`).
        wrapper: Regex::new(r#"(?i)(?-u:\b)php://filter|(?:^|[=(:'"])[\s\x00]*(?:php://(?:input|expect|fd|memory|temp|stdin)|expect://\S|phar://\S|zip://[^\s#]+(?:#|%23)\S|compress\.(?:zlib|bzip2)://\S|glob://\S|rar://\S)|(?-u:\b)data:[^,\s]{0,40};base64,(?:PD9waHA|PD89)"#).unwrap(),
        etc_probe: Regex::new(r#"(?i)(?:^|[\s=:'"(.\x00])/etc/(?:services|hostname|os-release|environment|machine-id)(?-u:\b)"#).unwrap(),
        // An NTFS alternate data stream named on a file (`index.php::$DATA` reads its source;
        // not a PHP static property, `self::$data`).
        // Cloud instance metadata (AWS, GCP, Azure, OpenStack, Alibaba; the ECS task endpoint):
        // a URL of it stored where the server fetches URLs (a webhook, an avatar) returns the
        // instance's credentials. The address with a path or after `//`, the host names anywhere.
        // (as a URL or a parameter's value, with a path after the address: not a CIDR,
        // `169.254.169.254/32`, nor prose naming it, `hop limit 1 for 169.254.169.254/latest/...`)
        metadata: Regex::new(r"(?i)(?:^|//|@|=)(?:169\.254\.169\.254|100\.100\.100\.200|169\.254\.170\.2|\[?fd00:ec2::254\]?|\[::ffff:169\.254\.169\.254\])(?::\d{1,5})?/[a-z]|//(?:169\.254\.169\.254|\[?fd00:ec2::254\]?|\[::ffff:169\.254\.169\.254\]|2852039166|0xa9fea9fe|0251\.0376\.0251\.0376|instance-data)(?:[:/]|$)|(?-u:\b)metadata\.google\.internal(?-u:\b)|/computemetadata/v1(?-u:\b)").unwrap(),
        ntfs_stream: Regex::new(r"(?i)\.[a-z0-9]{1,8}:[\w.-]{0,40}:\$data(?-u:\b)|::\$(?:index_allocation|bitmap)(?-u:\b)|:\$i30:").unwrap(),
    })
}

fn push(out: &mut Vec<Hit>, rule: &'static str, weight: u8, m: regex::Match, text: &str) {
    if out.iter().any(|h| h.rule_id == rule) {
        return;
    }
    let ev: String = text[m.start()..m.end()].chars().map(|c| if c == '\0' { '␀' } else { c }).take(40).collect();
    out.push(Hit { class: Class::Traversal, rule_id: rule, weight, offset: m.start(), length: (m.end() - m.start()).min(64), detail: format!("match={:?}", ev) });
}

pub fn scan(text: &str, had_nul: bool, path_ctx: bool, out: &mut Vec<Hit>) {
    let r = rx();
    let b = text.as_bytes();
    if b.windows(2).any(|w| w == b".." || w == b"/\\" || w == b"\\/") || b.windows(2).filter(|w| w[0] == b'.' && (w[1] == b'/' || w[1] == b'\\')).count() >= 3 || b.windows(4).any(|w| w.eq_ignore_ascii_case(b"0x2e")) {
        if let Some(m) = r.dotdot.find(text) {
            push(out, "traversal.dot_dot", 90, m, text);
        } else if let Some(m) = r.dotdot_weird.find(text) {
            push(out, "traversal.dot_dot", 80, m, text);
        }
    }
    if b.iter().any(|&c| c == b'/' || c == b'\\' || c == b'.') {
        if let Some(m) = r.sensitive.find(text) {
            push(out, "traversal.sensitive_path", 85, m, text);
        } else if let Some(m) = r.etc_probe.find(text) {
            // (the /etc files a probe reads that notes do not name, as an absolute path:
            // `/etc/os-release`, not `hosting etc/services`)
            push(out, "traversal.sensitive_path", 85, m, text);
        }
        // A Java web application's private folder, in a value that is a path (no white space:
        // `/usr/local/tomcat/webapps/ROOT/WEB-INF/web.xml`, not `Moved config to WEB-INF/classes`)
        if let Some(m) = if text.contains(char::is_whitespace) { None } else { r.web_inf.find(text) } {
            push(out, "traversal.sensitive_path", 85, m, text);
        }
        if let Some(m) = if b.contains(&b'/') { r.metadata.find(text) } else { None } {
            push(out, "traversal.metadata_endpoint", 80, m, text);
        }
        if let Some(m) = r.file_url.find(text) {
            push(out, "traversal.file_url", if path_ctx { 70 } else { 45 }, m, text);
        }
    }
    if b.contains(&b':') {
        if let Some(m) = r.wrapper.find(text) {
            push(out, "traversal.stream_wrapper", 85, m, text);
        }
        if let Some(m) = if b.contains(&b'$') { r.ntfs_stream.find(text) } else { None } {
            push(out, "traversal.ntfs_stream", 80, m, text);
        }
    }
    if had_nul {
        if let Some(m) = r.nul_ext.find(text) {
            push(out, "traversal.nul_terminated", 85, m, text);
        } else if path_ctx {
            let p = b.iter().position(|&c| c == 0).unwrap_or(0);
            out.push(Hit { class: Class::Traversal, rule_id: "traversal.nul_byte", weight: 70, offset: p, length: 1, detail: "nul".into() });
        }
    }
}
