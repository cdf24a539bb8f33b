//! Decoding of obfuscated input before judging it.
//!
//! Every step is bounded (a fixed number of rounds, each a single linear pass) so the
//! whole pipeline is linear in the input length.

/// Maximum URL-decoding rounds (`%252e` needs two, `%25252e` three).
const MAX_URL_ROUNDS: usize = 4;
/// Maximum HTML-entity rounds (`&amp;lt;` needs two).
const MAX_ENTITY_ROUNDS: usize = 2;

pub struct Decoded {
    pub text: String,
    pub steps: Vec<&'static str>,
    /// true when at least one NUL byte was present in the decoded text
    pub had_nul: bool,
}

fn hexval(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn has_percent_escape(s: &[u8]) -> bool {
    let n = s.len();
    let mut i = 0;
    while i < n {
        if s[i] == b'%' {
            if i + 2 < n && hexval(s[i + 1]).is_some() && hexval(s[i + 2]).is_some() {
                return true;
            }
            if i + 5 < n && (s[i + 1] == b'u' || s[i + 1] == b'U') && s[i + 2..i + 6].iter().all(|&c| hexval(c).is_some()) {
                return true;
            }
        }
        i += 1;
    }
    false
}

fn push_char(out: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Map look-alike code points used for evasion to their ASCII meaning.
pub(crate) fn fold_lookalike(cp: u32) -> Option<char> {
    Some(match cp {
        0x2215 | 0xFF0F | 0x2044 => '/',
        0x2216 | 0xFF3C | 0x29F5 | 0xFE68 => '\\',
        0xFF0E | 0x2024 => '.',
        // Not the CJK brackets 〈 〉 (U+3008/3009): ordinary punctuation in Japanese text, and
        // no browser or normalisation reads them as markup.
        0xFF1C | 0x2039 => '<',
        0xFF1E | 0x203A => '>',
        0xFF07 => '\'',
        0xFF02 => '"',
        _ => return None,
    })
}

/// One pass of percent decoding. Returns None when nothing changed.
fn url_round(s: &[u8], plus_space: bool) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut changed = false;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b == b'%' {
            if i + 5 < s.len()
                && (s[i + 1] == b'u' || s[i + 1] == b'U')
                && s[i + 2..i + 6].iter().all(|&c| hexval(c).is_some())
            {
                let cp = s[i + 2..i + 6].iter().fold(0u32, |a, &c| a * 16 + hexval(c).unwrap() as u32);
                let c = fold_lookalike(cp).or_else(|| char::from_u32(cp)).unwrap_or('\u{FFFD}');
                push_char(&mut out, c);
                i += 6;
                changed = true;
                continue;
            }
            if i + 2 < s.len() {
                if let (Some(h), Some(l)) = (hexval(s[i + 1]), hexval(s[i + 2])) {
                    out.push(h * 16 + l);
                    i += 3;
                    changed = true;
                    continue;
                }
            }
        } else if b == b'+' && plus_space {
            out.push(b' ');
            i += 1;
            changed = true;
            continue;
        }
        out.push(b);
        i += 1;
    }
    if changed {
        Some(out)
    } else {
        None
    }
}

/// Convert bytes to a string, mapping overlong UTF-8 encodings of '.', '/', '\\'
/// (`%c0%ae`, `%c0%af`, `%c1%9c`, `%e0%80%af`...) to their ASCII meaning and
/// dropping stray overlong lead bytes.
fn bytes_to_string(b: Vec<u8>) -> String {
    match String::from_utf8(b) {
        Ok(s) => s,
        Err(e) => {
            let b = e.into_bytes();
            let mut out = Vec::with_capacity(b.len());
            let mut i = 0;
            while i < b.len() {
                let c = b[i];
                if (c == 0xC0 || c == 0xC1) && i + 1 < b.len() && (b[i + 1] & 0xC0) == 0x80 {
                    let v = (((c & 0x1F) as u32) << 6) | (b[i + 1] & 0x3F) as u32;
                    out.push(v as u8);
                    i += 2;
                    continue;
                }
                if c == 0xE0 && i + 2 < b.len() && b[i + 1] == 0x80 && (b[i + 2] & 0xC0) == 0x80 {
                    out.push(b[i + 2] & 0x3F);
                    i += 3;
                    continue;
                }
                if c == 0xC0 || c == 0xC1 {
                    // stray overlong lead byte (`..%c0/`): drop it
                    i += 1;
                    continue;
                }
                out.push(c);
                i += 1;
            }
            String::from_utf8_lossy(&out).into_owned()
        }
    }
}

fn named_entity(name: &str) -> Option<char> {
    Some(match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "quot" => '"',
        "apos" => '\'',
        "lpar" => '(',
        "rpar" => ')',
        "colon" => ':',
        "tab" => '\t',
        "newline" => '\n',
        "sol" => '/',
        "bsol" => '\\',
        "nbsp" => ' ',
        "period" => '.',
        "excl" => '!',
        "num" => '#',
        "equals" => '=',
        "plus" => '+',
        "comma" => ',',
        "semi" => ';',
        "grave" => '`',
        "lsqb" | "lbrack" => '[',
        "rsqb" | "rbrack" => ']',
        "lcub" | "lbrace" => '{',
        "rcub" | "rbrace" => '}',
        "lowbar" => '_',
        "dollar" => '$',
        "percnt" => '%',
        "ast" => '*',
        "quest" => '?',
        "commat" => '@',
        "vert" | "verbar" => '|',
        "hyphen" | "dash" => '-',
        _ => return None,
    })
}

/// One pass of HTML entity decoding (named, decimal, hex; semicolon optional).
fn entity_round(s: &str) -> Option<String> {
    if !s.contains('&') {
        return None;
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        if b[i] != b'&' {
            i += 1;
            continue;
        }
        let start = i;
        let mut j = i + 1;
        let mut decoded: Option<char> = None;
        if j < b.len() && b[j] == b'#' {
            j += 1;
            let hex = j < b.len() && (b[j] == b'x' || b[j] == b'X');
            if hex {
                j += 1;
            }
            let ds = j;
            let mut v: u32 = 0;
            while j < b.len() && j - ds < 12 {
                let d = if hex { hexval(b[j]).map(|x| x as u32) } else if b[j].is_ascii_digit() { Some((b[j] - b'0') as u32) } else { None };
                match d {
                    Some(d) => {
                        v = v.saturating_mul(if hex { 16 } else { 10 }).saturating_add(d);
                        j += 1;
                    }
                    None => break,
                }
            }
            if j > ds {
                decoded = Some(fold_lookalike(v).or_else(|| char::from_u32(v)).unwrap_or('\u{FFFD}'));
                if j < b.len() && b[j] == b';' {
                    j += 1;
                }
            }
        } else {
            let ns = j;
            while j < b.len() && j - ns < 10 && b[j].is_ascii_alphabetic() {
                j += 1;
            }
            if j > ns {
                let name = &s[ns..j];
                let lname = name.to_ascii_lowercase();
                let semi = j < b.len() && b[j] == b';';
                // Without semicolon only accept the common short ones, and only when the
                // next char is not a letter (so "AT&T" or "&amplifier" stay as they are).
                if let Some(c) = named_entity(&lname) {
                    if semi {
                        decoded = Some(c);
                        j += 1;
                    } else if matches!(lname.as_str(), "lt" | "gt" | "amp" | "quot" | "apos" | "lpar" | "rpar" | "colon" | "tab" | "newline") {
                        decoded = Some(c);
                    }
                }
            }
        }
        match decoded {
            Some(c) => {
                out.push_str(&s[last..start]);
                out.push(c);
                last = j;
                i = j;
                changed = true;
            }
            None => i = start + 1,
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&s[last..]);
    Some(out)
}

/// `\uXXXX`, `\u{X..}`, `\xXX` and JS octal `\NNN` escapes.
fn escape_round(s: &str) -> Option<String> {
    if !s.contains('\\') {
        return None;
    }
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut changed = false;
    let mut last = 0;
    let mut i = 0;
    while i + 1 < b.len() {
        if b[i] != b'\\' {
            i += 1;
            continue;
        }
        let n = b[i + 1];
        let mut dec: Option<(char, usize)> = None;
        if (n == b'u' || n == b'U') && i + 5 < b.len() && b[i + 2..i + 6].iter().all(|&c| hexval(c).is_some()) {
            let cp = b[i + 2..i + 6].iter().fold(0u32, |a, &c| a * 16 + hexval(c).unwrap() as u32);
            dec = Some((fold_lookalike(cp).or_else(|| char::from_u32(cp)).unwrap_or('\u{FFFD}'), 6));
        } else if n == b'u' && i + 3 < b.len() && b[i + 2] == b'{' {
            let mut j = i + 3;
            let mut v = 0u32;
            while j < b.len() && j < i + 10 && hexval(b[j]).is_some() {
                v = v * 16 + hexval(b[j]).unwrap() as u32;
                j += 1;
            }
            if j < b.len() && b[j] == b'}' && j > i + 3 {
                dec = Some((char::from_u32(v).unwrap_or('\u{FFFD}'), j + 1 - i));
            }
        } else if (n == b'x' || n == b'X') && i + 3 < b.len() && hexval(b[i + 2]).is_some() && hexval(b[i + 3]).is_some() {
            let v = hexval(b[i + 2]).unwrap() * 16 + hexval(b[i + 3]).unwrap();
            if v < 0x80 {
                dec = Some((v as char, 4));
            }
        } else if (b'0'..=b'3').contains(&n)
            && i + 3 < b.len()
            && (b'0'..=b'7').contains(&b[i + 2])
            && (b'0'..=b'7').contains(&b[i + 3])
        {
            let v = (n - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            if v < 0x80 {
                dec = Some((v as char, 4));
            }
        } else if n == b'n' || n == b'r' {
            dec = Some((if n == b'n' { '\n' } else { '\r' }, 2));
        }
        match dec {
            Some((c, len)) => {
                out.push_str(&s[last..i]);
                out.push(c);
                i += len;
                last = i;
                changed = true;
            }
            None => i += 1,
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&s[last..]);
    Some(out)
}

/// Fold full-width and other look-alike characters outside of escapes.
fn fold_round(s: &str) -> Option<String> {
    if s.is_ascii() {
        return None;
    }
    if !s.chars().any(|c| fold_lookalike(c as u32).is_some()) {
        return None;
    }
    Some(s.chars().map(|c| fold_lookalike(c as u32).unwrap_or(c)).collect())
}

/// Decode `input`. `url_ctx` enables `+` as space unconditionally.
pub fn decode(input: &str, url_ctx: bool) -> Decoded {
    let mut steps: Vec<&'static str> = Vec::new();
    let mut cur: Option<String> = None;

    // URL decoding, repeated.
    let plus = url_ctx || has_percent_escape(input.as_bytes());
    let mut rounds = 0;
    loop {
        if rounds >= MAX_URL_ROUNDS {
            break;
        }
        let src: &str = cur.as_deref().unwrap_or(input);
        if !(src.contains('%') || (plus && rounds == 0 && src.contains('+'))) {
            break;
        }
        match url_round(src.as_bytes(), plus && rounds == 0) {
            Some(b) => {
                cur = Some(bytes_to_string(b));
                if rounds == 0 {
                    steps.push("url");
                } else if rounds == 1 {
                    steps.push("url_repeat");
                }
                rounds += 1;
            }
            None => break,
        }
    }

    // Escapes and entities: alternate a couple of times (entities may hide escapes).
    for _ in 0..MAX_ENTITY_ROUNDS {
        let mut any = false;
        let src: &str = cur.as_deref().unwrap_or(input);
        if let Some(s) = entity_round(src) {
            cur = Some(s);
            if !steps.contains(&"html_entity") {
                steps.push("html_entity");
            }
            any = true;
        }
        let src: &str = cur.as_deref().unwrap_or(input);
        if let Some(s) = escape_round(src) {
            cur = Some(s);
            if !steps.contains(&"escape") {
                steps.push("escape");
            }
            any = true;
        }
        if !any {
            break;
        }
    }
    let src: &str = cur.as_deref().unwrap_or(input);
    if src.contains("+AD") || src.contains("+AC") {
        let s = src.replace("+ADw-", "<").replace("+AD4-", ">").replace("+ACI-", "\"").replace("+ACc-", "'").replace("+AC8-", "/");
        if s != src {
            cur = Some(s);
            steps.push("utf7");
        }
    }
    let src: &str = cur.as_deref().unwrap_or(input);
    if let Some(s) = fold_round(src) {
        cur = Some(s);
        steps.push("unicode_fold");
    }
    let text = cur.unwrap_or_else(|| input.to_string());
    let had_nul = text.as_bytes().contains(&0);
    if had_nul {
        steps.push("nul");
    }
    if text.bytes().any(|b| b.is_ascii_uppercase()) {
        steps.push("lowercase");
    }
    Decoded { text, steps, had_nul }
}

/// `text` with a path spelled with `/./` or doubled slashes (`/etc/./passwd`, `//etc//shadow`)
/// written as the system resolves it, if it has one. (Not the `//` of a URL's scheme.)
pub fn normalized_path(text: &str) -> Option<String> {
    let b = text.as_bytes();
    if !(text.contains("/./") || text.match_indices("//").any(|(p, _)| p == 0 || b[p - 1] != b':')) {
        return None;
    }
    let mut p = text.to_string();
    while p.contains("/./") {
        p = p.replace("/./", "/");
    }
    let mut n = String::with_capacity(p.len());
    let (mut prev, mut before_prev) = (None, None);
    for c in p.chars() {
        if !(c == '/' && prev == Some('/') && before_prev != Some(':')) {
            n.push(c);
        }
        (before_prev, prev) = (prev, Some(c));
    }
    (n != text).then_some(n)
}

/// Spellings attackers use to get a keyword or command past filters that a decoder does not
/// undo, rewritten into the plain form (each with its step name):
/// - `comment_split`: an inline comment inside a word (`UN/**/ION SEL/**/ECT`), for
///   applications or filters that strip comments;
/// - `shell_dequote`: quotes and backslashes inside a word (`c'a't /e't'c/pa's'swd`,
///   `c\at`), which a shell removes, when the value also has a shell separator;
/// - `high_bit`: Latin-1 characters with the eighth bit dropped (`¼script¾` is `<script>` in
///   a page served as US-ASCII), when the value has both `¼` and `¾`.
pub fn evasion_variants(text: &str) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    if text.match_indices("/*").any(|(p, _)| p > 0 && word(b[p - 1])) {
        let mut s = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(i) = rest.find("/*") {
            s.push_str(&rest[..i]);
            match rest[i + 2..].find("*/") {
                Some(j) => rest = &rest[i + 2 + j + 2..],
                None => {
                    rest = "";
                    break;
                }
            }
        }
        s.push_str(rest);
        out.push(("comment_split", s));
    }
    let separator = b.iter().any(|c| matches!(c, b';' | b'|' | b'&' | b'\n' | b'`')) || text.contains("$(");
    let inner = |i: usize| {
        let ok = |c: u8| c.is_ascii_alphanumeric() || c == b'/';
        i > 0 && i + 1 < b.len() && ok(b[i - 1]) && (ok(b[i + 1]) || matches!(b[i + 1], b'\'' | b'"'))
    };
    // (and a backslash that starts a word after a separator or a space, `;\u\n\a\m\e`: the shell
    // drops it too)
    let leading = |i: usize| {
        b[i] == b'\\' && i > 0 && matches!(b[i - 1], b';' | b'|' | b'&' | b'`' | b'(' | b' ' | b'\t' | b'\n') && b.get(i + 1).is_some_and(u8::is_ascii_alphanumeric)
    };
    if separator && b.iter().enumerate().any(|(i, &c)| matches!(c, b'\'' | b'"' | b'\\') && inner(i) || leading(i)) {
        // Only ASCII bytes are removed, so what is left is still UTF-8.
        let kept: Vec<u8> = b
            .iter()
            .enumerate()
            .filter(|&(i, &c)| !(matches!(c, b'\'' | b'"' | b'\\') && (inner(i) || (i > 0 && matches!(b[i - 1], b'\'' | b'"') && inner(i - 1))) || leading(i)))
            .map(|(_, &c)| c)
            .collect();
        if let Ok(s) = String::from_utf8(kept) {
            if s != text {
                out.push(("shell_dequote", s));
            }
        }
    }
    // A NUL inside a word (`<SCR%00IPT>`): filters that stop at it see no tag, the browser or
    // the C string it ends up in drops it.
    if text.contains('\0') && text.contains('<') {
        out.push(("nul_strip", text.replace('\0', "")));
    }
    // US-ASCII with the high bit set (`¼script¾alert(¢XSS¢)¼/script¾`): a page served as
    // US-ASCII drops the eighth bit, so Latin-1 `¼` and `¾` (0xBC, 0xBE) become `<` and `>`.
    // Only when both brackets are there; the variant drops the bit of Latin-1 characters.
    if text.contains('\u{BC}') && text.contains('\u{BE}') {
        out.push(("high_bit", text.chars().map(|c| if ('\u{A0}'..='\u{FF}').contains(&c) { char::from(c as u8 - 0x80) } else { c }).collect()));
    }
    // Form encoding without a percent escape (`<a/+/onmouseover+=+prompt()>`, `<img+src=x`,
    // `;sleep+5`): a value whose `+` sits next to markup or SQL punctuation, after a tag name, or
    // after a command name in a value with a shell separator (any `+` when it has no white
    // space), is also read with `+` as a space, as the form decoder that will receive it does
    // (decode() does it only when the value has a percent escape).
    let markup = |c: u8| matches!(c, b'<' | b'>' | b'/' | b'=' | b'\'' | b'"' | b'(' | b')');
    let shell = b.iter().any(|c| matches!(c, b';' | b'|' | b'&' | b'`')) || text.contains("$(");
    let spaced = b.iter().any(|c| c.is_ascii_whitespace());
    // (the word before a `+`: a tag name `<img+src`, or a command `sleep+5`)
    let word_before = |i: usize| {
        let start = b[..i].iter().rposition(|c| !c.is_ascii_alphanumeric()).map_or(0, |p| p + 1);
        (start, &text[start..i])
    };
    let plus_form = b.iter().enumerate().any(|(i, &c)| {
        c == b'+'
            && (i > 0 && markup(b[i - 1])
                || b.get(i + 1).is_some_and(|&n| markup(n))
                || shell && !spaced
                || {
                    let (start, w) = word_before(i);
                    !w.is_empty() && (start > 0 && b[start - 1] == b'<' || shell && super::cmdi::is_command(&w.to_ascii_lowercase()))
                })
    });
    // (`1+union+select+1,2--+`, `1+order+by+5`: a value without white space whose `+` sit
    // around an SQL keyword, a numeric parameter as a form or a scanner sends it)
    let sql_plus = || {
        !spaced
            && text.split('+').skip(1).any(|w| {
                let w = w.split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or_default().to_ascii_lowercase();
                matches!(w.as_str(), "union" | "select" | "order" | "group" | "having" | "and" | "or" | "procedure" | "waitfor" | "limit" | "from" | "where" | "into")
            })
    };
    if plus_form || sql_plus() {
        out.push(("form_plus", text.replace('+', " ")));
    }
    if let Some(n) = normalized_path(text) {
        out.push(("path_normalized", n));
    }
    // cmd.exe's caret escapes (`& w^h^o^a^m^i`, `&c^a^l^c`): a caret inside a word after a
    // separator is dropped by the shell.
    if b.contains(&b'^') && b.iter().any(|c| matches!(c, b'&' | b'|')) && b.windows(3).any(|w| w[0].is_ascii_alphanumeric() && w[1] == b'^' && w[2].is_ascii_alphanumeric()) {
        out.push(("caret_strip", text.replace('^', "")));
    }
    // A keyword written inside itself (`UNIunionON SELselectECT`, `SCRscriptIPT`): what a filter
    // that deletes the keyword once leaves behind.
    if let Some(unnested) = nested_keywords_removed(text) {
        out.push(("nested_keyword", unnested));
    }
    // Shell expansions that are empty, put inside or around a command word after a separator
    // (`;i$()d`, `;who$@ami`, `;i${x}d`, `;$@id`, ``;who``ami``): the shell runs the word without them.
    if (b.contains(&b'$') || b.windows(2).any(|w| w == b"``")) && b.iter().any(|c| matches!(c, b';' | b'|' | b'&' | b'\n' | b'`')) {
        if let Some(stripped) = empty_expansions_stripped(text) {
            out.push(("empty_expansion_strip", stripped));
        }
    }
    out
}

/// `text` with each word that is a keyword written inside itself (`UNIunionON`, `selSELECTect`)
/// replaced by the keyword; `None` when there is none.
pub(crate) fn nested_keywords_removed(text: &str) -> Option<String> {
    const KEYWORDS: &[&str] = &["union", "select", "from", "where", "insert", "update", "delete", "drop", "sleep", "script", "alert", "onerror", "onload", "javascript"];
    let nested = |w: &str| -> Option<&'static str> {
        let l = w.to_ascii_lowercase();
        KEYWORDS.iter().copied().find(|k| {
            l.len() == 2 * k.len() && (1..k.len()).any(|p| l[p..].starts_with(k) && l[..p] == k[..p] && l[p + k.len()..] == k[p..])
        })
    };
    // (a cheap test first: a value without such a word is most values)
    let words = || text.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| (8..=20).contains(&w.len()));
    if !words().any(|w| nested(w).is_some()) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices().chain(std::iter::once((text.len(), ' '))) {
        if c.is_ascii_alphabetic() {
            word_start.get_or_insert(i);
            continue;
        }
        if let Some(st) = word_start.take() {
            let w = &text[st..i];
            out.push_str(nested(w).unwrap_or(w));
        }
        if i < text.len() {
            out.push(c);
        }
    }
    Some(out)
}

/// `text` without the empty shell expansions glued to a word: `$@`, `$*`, `$1`..`$9`, `$()`,
/// `$( )`, ` `` `, `${}` and `${x}` of a short lowercase name (unset: `${IFS}` and the like are a
/// space, not nothing);
/// `None` when there are none.
fn empty_expansions_stripped(text: &str) -> Option<String> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let (mut i, mut changed) = (0, false);
    while i < b.len() {
        let len = if b[i] == b'`' && b.get(i + 1) == Some(&b'`') {
            2
        } else if b[i] != b'$' {
            0
        } else {
            match b.get(i + 1) {
                // (`$1`..`$9`: positional parameters, unset where the injected command runs)
                Some(b'@' | b'*' | b'1'..=b'9') => 2,
                Some(b'(') => {
                    let blank = b[i + 2..].iter().take_while(|c| **c == b' ').count();
                    if b.get(i + 2 + blank) == Some(&b')') { 3 + blank } else { 0 }
                }
                Some(b'{') => {
                    let name = b[i + 2..].iter().take_while(|c| c.is_ascii_lowercase()).count();
                    if name <= 8 && b.get(i + 2 + name) == Some(&b'}') { 3 + name } else { 0 }
                }
                _ => 0,
            }
        };
        // (glued to a letter on one side at least: not `cost $@ 5`)
        let glued = len > 0 && (i > 0 && b[i - 1].is_ascii_alphabetic() || b.get(i + len).is_some_and(|c| c.is_ascii_alphabetic()));
        if glued {
            i += len;
            changed = true;
        } else {
            let ch = text[i..].chars().next().expect("char boundary");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    changed.then_some(out)
}
