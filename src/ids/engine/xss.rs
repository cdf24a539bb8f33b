//! Cross-site scripting: an HTML-aware scan for tags, event handlers, script URLs and
//! JavaScript-context breakouts. Regexes are compiled once; the `regex` crate matches
//! in linear time.

use super::{Class, Hit, Seen};
use regex::Regex;
use std::sync::OnceLock;

/// Build `j[\x00-\x20]*a[\x00-\x20]*v...` so whitespace/control chars inside the word do not hide it.
fn spaced(word: &str) -> String {
    let mut s = String::new();
    for (i, c) in word.chars().enumerate() {
        if i > 0 {
            s.push_str(r"[\x00-\x20]*");
        }
        s.push_str(&regex::escape(&c.to_string()));
    }
    s
}

struct Rx {
    script_tag: Regex,
    danger_tag: Regex,
    tag_handler: Regex,
    attr_handler: Regex,
    js_url: Regex,
    js_url_weak: Regex,
    data_url: Regex,
    src_script: Regex,
    style_expr: Regex,
    srcdoc: Regex,
    js_sink: Regex,
    js_breakout: Regex,
    template: Regex,
    bare_handler: Regex,
    meta_refresh: Regex,
    tag_attr: Regex,
    declaration: Regex,
    style_attr: Regex,
    base64_markup: Regex,
}

/// The base64 of markup that runs script, as a value or a `data:` URL starts: `<script`,
/// `<SCRIPT`, `<svg`, `<SVG`, `<img`, `<IMG`, `<iframe`, `<IFRAME`, `<body`, `<BODY`.
const B64_SCRIPT_MARKUP: &str = "PHNjcmlwd|PFNDUklQV|PHN2Zy|PFNWRy|PGltZy|PElNRy|PGlmcmFtZ|PElGUkFNR|PGJvZHk|PEJPRFk";

fn rx() -> &'static Rx {
    static R: OnceLock<Rx> = OnceLock::new();
    R.get_or_init(|| {
        let js = format!("(?:{}|{}|{}|{})", spaced("javascript"), spaced("vbscript"), spaced("livescript"), spaced("jscript"));
        Rx {
            script_tag: Regex::new(r"(?i)<[\s/\x00]*script(?-u:\b)|</[\s\x00]*script").unwrap(),
            danger_tag: Regex::new(r"(?i)<[\s\x00]*(iframe|frame|frameset|object|embed|applet|base|isindex|svg|math|xml|import|portal|xss|vmlframe|animate|set|handler|listener|layer|ilayer|bgsound|xmp|plaintext|noscript|template|x|xsl:[a-z]+|image|video|audio|body|details|marquee|keygen|input|textarea|button|select|form|meta|link|style|html)(?-u:\b)").unwrap(),
            tag_handler: Regex::new(r#"(?i)<[a-z!?/%][^>]{0,400}?[\s/"'`\x00;]on[a-z]{3,40}[\s\x00]*="#).unwrap(),
            attr_handler: Regex::new(r#"(?i)(?:^|[\s/"'`;\x00])on[a-z]{3,40}[\s\x00]*=[\s\x00]*["'`]?[^"'`>]{0,80}?[(`=&\\]"#).unwrap(),
            js_url: Regex::new(&format!(r#"(?i){}[\x00-\x20]*(?::|&colon;?)[\s\S]{{0,60}}?[(`=&\\%\[]"#, js)).unwrap(),
            js_url_weak: Regex::new(&format!(r"(?i)(?:^|[\s=\x22'(,?&:/])(?:{})[\x00-\x20]*:", js)).unwrap(),
            // (or of any type, whose base64 opens with markup that runs script: `<script`, `<svg`,
            // `<img`, `<iframe`, `<body`)
            data_url: Regex::new(&format!(r"(?i)data[\x00-\x20]*:[\x00-\x20]*(?:text/html|image/svg\+xml|application/(?:x-)?(?:javascript|ecmascript|xhtml)|text/(?:javascript|xml))|data[\x00-\x20]*:[^,\s]{{0,60}};base64,[\s]*(?-i:{B64_SCRIPT_MARKUP}|PGh0bWw|PEhUTUw|PG9iamVjd|PE9CSkVDV)")).unwrap(),
            // An attribute added to the tag a value lands in unquoted: a protocol-relative host,
            // any path (`42 src=//evil/p`, `src=/\evil`, `src=\\evil`: a script loads whatever
            // is sent), or an http(s) URL of a script (`src=https://evil/x.js`; a cited page,
            // `src=https://reuters.com/...`, is not one).
            src_script: Regex::new(r#"(?i)(?:^|[\s\x00/"'])src[\s\x00]*=[\s\x00]*['"]?(?:https?://[^\s'"<>]+\.m?js(?-u:\b)|(?://|/\\|\\\\)[^\s'"<>/\\]+[/\\]?)"#).unwrap(),
            style_expr: Regex::new(r"(?i)expression[\s\x00]*\(|-moz-binding|behavior[\s\x00]*:|@import|url[\s\x00]*\([\s\x00'\x22]*(?:javascript|vbscript)|<[\s]*style").unwrap(),
            srcdoc: Regex::new(r"(?i)(?:srcdoc|formaction|xlink:href|dynsrc|lowsrc|datasrc|datafld|dataformatas|ng-[a-z-]+|v-on:[a-z]+|x-on:[a-z]+)[\s\x00]*=").unwrap(),
            js_sink: Regex::new(r#"(?i)(?-u:\b)(?:alert|prompt|confirm|eval|settimeout|setinterval|execscript|msgbox|fromcharcode|importscripts|atob)(?:[\s\x00]*(?:\?\.[\s\x00]*)?(?:(?:\.|\?\.)[\s\x00]*(?:call|apply)[\s\x00]*)?\([\s\x00]*(?:\)|[0-9.]+[\s\x00]*\)|['"`/\[][^)]{0,100}\)|[a-z_$][\w$]*[\s\x00]*[.(\[+][^)]{0,100}\)|(?:document|window|location|origin|alt|src|name|this|top|self|parent|x|xss)[\s\x00]*\))|[\s\x00]*`|\)|&#|\\u)|document[\s\x00]*\.[\s\x00]*(?:cookie|domain|write|location|body)|window[\s\x00]*\.[\s\x00]*(?:location|name|open)|location[\s\x00]*\.[\s\x00]*(?:hash|href|search|replace)|\.innerhtml|constructor\(|\.constructor[\s\x00]*\(|(?-u:\b)(?:top|self|window|parent|this|globalthis|frames)\x00*\[|\(alert\)|\[alert\]|=alert(?-u:\b)|\.find\(alert|navigator\.|string\.fromcharcode|\$\.getscript|javascript:|__proto__|[/)]\.source(?-u:\b)|(?-u:\b)(?:alert|prompt|confirm|print|eval)[\s\x00]*(?:\?\.)?[\s\x00]*\.?[\s\x00]*(?:call|apply)[\s\x00]*\([\s\x00]*(?:null|undefined|this|window|top|self)[\s\x00]*,|(?-u:\b)import\([\s\x00]*['"`](?://|https?:|data:|blob:|javascript:|\.{0,2}/[^'"`\s]*\.m?js['"`])|(?-u:\b)print[\s\x00]*(?:\?\.[\s\x00]*)?\([\s\x00]*\)|(?-u:\b)(?:settimeout|setinterval|reflect[\s\x00]*\.[\s\x00]*apply)[\s\x00]*\([\s\x00]*(?:(?:top|self|window|parent|globalthis|frames)[\s\x00]*\.[\s\x00]*)?(?:alert|prompt|confirm|eval|print)[\s\x00]*,|(?-u:\b)(?:alert|prompt|confirm|print|eval)[\s\x00]*\.[\s\x00]*bind[\s\x00]*\([^()]{0,40}\)[\s\x00]*\(|(?-u:\b)(?:shared)?worker[\s\x00]*\([\s\x00]*['"`][\s\x00]*(?://|https?:|data:|blob:|javascript:)|(?-u:\b)function\(['"`][^\n]{0,200}?['"`]\)(?:\(|\.call\(|\.apply\()|[{,][\s\x00]*(?:valueof|tostring|tojson|get|set|then|\[symbol\.toprimitive\])[\s\x00]*:[\s\x00]*(?:(?:top|self|window|parent|globalthis|frames)[\s\x00]*\.[\s\x00]*)?(?:alert|prompt|confirm|eval)[\s\x00]*[,}]|(?:\[,|\[\{\},)(?:(?:top|self|window|parent)\.)?(?:alert|prompt|confirm|eval)\]|=>[\s\x00]*(?:alert|prompt|confirm|eval)[\s\x00]*\(|externalinterface\.call[\s\x00]*\([\s\x00]*['"](?:alert|eval|prompt|confirm)['"]|(?-u:\b)(?-i:alert|prompt|confirm|print)\((?:\.\.\.\[|[-~!+]*(?:0[xob][0-9a-f_]+|[0-9][0-9_]*(?:\.[0-9]+)?(?:e[0-9]+)?n?)(?:[\s\x00]*(?:\*\*|&&|\|\||[=!]==?|[-+*/%&|^<>,])[\s\x00]*[-~!+]*(?:0[xob][0-9a-f_]+|[0-9][0-9_]*(?:\.[0-9]+)?(?:e[0-9]+)?n?))*\))"#).unwrap(),
            js_breakout: Regex::new(r#"(?i)(?:['"`]|</)[\s\x00]*[)\]}]*[\s\x00]*[;,+\-*|&^%/<>:?=]+[\s\x00]*[a-z_$][\w$.\[\]'"]{0,40}[\s\x00]*[(`]"#).unwrap(),
            template: Regex::new(r"\{\{[^}]{0,200}(?:constructor|\$eval|\$on|alert|(?-u:\b)prompt|tostring|\[\s*\$|__proto__|\$new)").unwrap(),
            bare_handler: Regex::new(r"(?i)^[\s\x00]*on(?:abort|activate|after|animation|auxclick|before|begin|blur|bounce|canplay|cellchange|change|click|close|contextmenu|control|copy|cuechange|cut|data|dblclick|deactivate|drag|drop|durationchange|emptied|end|error|filterchange|finish|focus|formchange|forminput|fullscreen|gesture|hashchange|help|input|invalid|key|languagechange|layoutcomplete|load|losecapture|lostpointercapture|message|mouse|move|mozfullscreen|offline|online|page|paste|pause|play|pointer|popstate|progress|propertychange|ratechange|readystatechange|repeat|reset|resize|resume|reverse|row|scroll|search|seek|select|show|stalled|start|stop|storage|submit|suspend|timeerror|timeupdate|toggle|touch|track|transition|unhandledrejection|unload|urlflip|volumechange|waiting|webkit|wheel|zoom|security|slotchange|visibilitychange|media|outofsync|redo|undo|sync|formdata)[a-z]*[\s\x00]*=?[\s\x00]*$|^[\s\x00]*(?:fscommand|seeksegmenttime)[\s\x00]*$").unwrap(),
            tag_attr: Regex::new(r#"(?i)<[a-z][a-z0-9:-]{0,30}[\s/\x00][^>]{0,200}?(?-u:\b)(?:src|href|action|data|background|code|codebase|value|poster|content)[\s\x00]*=[\s\x00]*["'`“]?[\s\x00]*(?:[a-z][a-z0-9+.-]{1,10}:|//|\\\\|#)|<[a-z]+[\s/\x00][^>]{0,100}?(?-u:\b)value[\s\x00]*=[\s\x00]*[“”"'`]?xss|</?(?:html|body|head|title|h[1-6])(?-u:\b)"#).unwrap(),
            declaration: Regex::new(r"(?i)<!--\[if|<!\[cdata\[|<\?(?:xml|import)|<!entity|<!doctype[^>]{0,200}\[|<\?php|<%|xmlns(?::[a-z]+)?[\s\x00]*=").unwrap(),
            style_attr: Regex::new(r"(?i)style[\s\x00]*=[^>]{0,200}?(?:url[\s\x00]*\(|expression|behavior|[{}]|\\[0-9a-f]{2})").unwrap(),
            base64_markup: Regex::new(&format!("^(?:{B64_SCRIPT_MARKUP})")).unwrap(),
            meta_refresh: Regex::new(r"(?i)http-equiv[\s\x00]*=[\s\x00]*['\x22]?[\s\x00]*(?:refresh|set-cookie|content-type)").unwrap(),
        }
    })
}

fn push(out: &mut Vec<Hit>, rule: &'static str, weight: u8, m: regex::Match, text: &str) {
    if out.iter().any(|h| h.rule_id == rule) {
        return;
    }
    let ev: String = text[m.start()..m.end()].chars().take(40).collect();
    out.push(Hit { class: Class::Xss, rule_id: rule, weight, offset: m.start(), length: (m.end() - m.start()).min(64), detail: format!("match={:?}", ev) });
}

/// A value that is only an angle bracket, or whose angle brackets only appear after
/// decoding (`&#x3C;`, `%3C`, `\u003c`): markup smuggled past an encoder.
pub fn encoded_markup(raw: &str, decoded: &str, out: &mut Vec<Hit>) {
    let t = decoded.trim();
    if t == "<" {
        out.push(Hit { class: Class::Xss, rule_id: "xss.angle_bracket_probe", weight: 50, offset: 0, length: decoded.len().min(64), detail: "lone angle bracket".into() });
        return;
    }
    // A decoded '<' that opens a tag (a letter, '/', '!', '?' or '%' after it): not `＜注意＞`, the
    // full-width brackets Japanese notes put around a heading, folded to '<'.
    let opens_tag = |p: usize| {
        let rest = decoded[p + 1..].trim_start_matches([' ', '\t', '\n', '\0']);
        rest.starts_with(|c: char| c.is_ascii_alphabetic() || matches!(c, '/' | '!' | '?' | '%'))
    };
    if let Some(p) = decoded.match_indices('<').map(|(p, _)| p).find(|&p| opens_tag(p)) {
        if !raw.contains('<') {
            out.push(Hit { class: Class::Xss, rule_id: "xss.encoded_markup", weight: 55, offset: p, length: 1, detail: "encoded '<'".into() });
        }
    }
}

pub fn scan(text: &str, seen: &Seen, out: &mut Vec<Hit>) {
    let b = text.as_bytes();
    // a real tag opener: '<' (+ optional whitespace/NUL) + letter, '/', '!', '?' or '%'
    let has_lt = seen.has(b'<') && b.iter().enumerate().any(|(i, &c)| {
        c == b'<' && {
            let mut j = i + 1;
            while j < b.len() && j < i + 8 && (b[j] == b' ' || b[j] == b'\t' || b[j] == 0 || b[j] == b'\n') {
                j += 1;
            }
            j < b.len() && (b[j].is_ascii_alphabetic() || matches!(b[j], b'/' | b'!' | b'?' | b'%'))
        }
    });
    let r = rx();
    if has_lt {
        if let Some(m) = r.script_tag.find(text) {
            push(out, "xss.script_tag", 95, m, text);
        }
        if let Some(m) = r.tag_handler.find(text) {
            push(out, "xss.event_handler", 95, m, text);
        }
        if let Some(m) = r.danger_tag.find(text) {
            let caps = r.danger_tag.captures(text).unwrap();
            let tag = caps.get(1).map(|c| c.as_str().to_ascii_lowercase()).unwrap_or_default();
            let w = match tag.as_str() {
                "iframe" | "frame" | "frameset" | "object" | "embed" | "applet" | "base" | "isindex" | "import" | "portal" | "xss" | "vmlframe" | "handler"
                | "listener" | "layer" | "ilayer" | "bgsound" | "xml" | "svg" | "math" | "meta" | "link" | "style" | "template" | "animate" | "set"
                | "plaintext" | "xmp" | "noscript" => 80,
                _ => 45,
            };
            let w = if tag.starts_with("xsl:") { 80 } else { w };
            push(out, "xss.dangerous_tag", w, m, text);
        }
        if let Some(m) = r.meta_refresh.find(text) {
            push(out, "xss.meta_refresh", 85, m, text);
        }
        if let Some(m) = r.tag_attr.find(text) {
            push(out, "xss.html_tag", 55, m, text);
        }
        if let Some(m) = r.declaration.find(text) {
            push(out, "xss.markup_declaration", 60, m, text);
        }
        if let Some(m) = r.style_attr.find(text) {
            push(out, "xss.style_injection", 60, m, text);
        }
    }
    let has = |c: u8| seen.has(c);
    let has_eq = has(b'=');
    let has_colon = has(b':');
    let ctrl = (0u8..0x20).any(|c| seen.has(c));
    if has_eq && seen.ci(b, b"on") {
        if let Some(m) = r.attr_handler.find(text) {
            push(out, "xss.event_handler_attr", 85, m, text);
        }
    }
    if has_colon && (ctrl || seen.ci(b, b"script")) {
        if let Some(m) = r.js_url.find(text) {
            push(out, "xss.script_url", 90, m, text);
        } else if let Some(m) = r.js_url_weak.find(text) {
            push(out, "xss.script_url", 60, m, text);
        }
    }
    if has_colon && seen.ci(b, b"data") {
        if let Some(m) = r.data_url.find(text) {
            push(out, "xss.data_url", 85, m, text);
        }
    }
    if has_lt || seen.ci(b, b"expression") || seen.ci(b, b"binding") || seen.ci(b, b"behavior") || seen.ci(b, b"@import") || (has(b'(') && seen.ci(b, b"url")) {
        if let Some(m) = r.style_expr.find(text) {
            push(out, "xss.style_injection", 75, m, text);
        }
    }
    if has_eq && (has_lt || has(b'"') || has(b'\'') || has(b'`') || has(b' ')) && (seen.ci(b, b"src") || seen.ci(b, b"action") || seen.ci(b, b"href") || seen.ci(b, b"data") || seen.ci(b, b"ng-") || seen.ci(b, b"on:")) {
        if let Some(m) = r.srcdoc.find(text) {
            push(out, "xss.dangerous_attribute", 80, m, text);
        } else if let Some(m) = r.src_script.find(text) {
            push(out, "xss.dangerous_attribute", 75, m, text);
        }
    }
    if seen.ci(b, b"{{") {
        if let Some(m) = r.template.find(text) {
            push(out, "xss.template_injection", 80, m, text);
        }
    }
    let sink_possible = has(b'(') || has(b'`') || has(b'[') || has(b'&') || has(b'\\')
        || ((has_eq || has(b'{')) && seen.ci(b, b"alert"))
        || ((has(b'.') || has(b':') || has(b'_')) && [&b"document"[..], b"window", b"location", b"innerhtml", b"navigator", b"__proto__", b".source", b"javascript:"].iter().any(|w| seen.ci(b, w)));
    if sink_possible {
        if let Some(m) = r.js_sink.find_iter(text).find(|m| !sink_named_in_prose(text, m)) {
            // a JS sink preceded by a string/script breakout is a clear attack
            let strong = r.js_breakout.find(text).is_some();
            push(out, "xss.js_sink", if strong { 85 } else { 60 }, m, text);
        } else if let Some(m) = r.js_breakout.find(text).filter(|m| {
            // a breakout into a sink's call whose argument runs on unclosed (`'); alert('XSS`)
            let name = m.as_str().trim_end_matches(|c: char| c == '(' || c == '`' || c.is_whitespace() || c == '\0');
            let name = name.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$')).next().unwrap_or("");
            matches!(name, "alert" | "prompt" | "confirm" | "eval")
        }) {
            push(out, "xss.js_sink", 85, m, text);
        }
    }
    // A value that is the base64 of markup that runs script (`PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==`
    // is `<script>alert(1)</script>`), for an application that decodes it into a page.
    if b.len() >= 16 && b.iter().all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=')) {
        if let Some(m) = r.base64_markup.find(text) {
            push(out, "xss.data_url", 70, m, text);
        }
    }
    // JSFuck: JavaScript written with the six characters `[]()!+` alone (`[][(![]+[])[+[]]...`)
    if has(b'[') && has(b'!') && has(b'+') {
        let six = b.iter().filter(|c| matches!(c, b'[' | b']' | b'(' | b')' | b'!' | b'+')).count();
        let spaces = b.iter().filter(|c| c.is_ascii_whitespace()).count();
        if six >= 24 && six * 10 >= (b.len() - spaces) * 9 && seen.ci(b, b"![]") && seen.ci(b, b"+[]") && !out.iter().any(|h| h.rule_id == "xss.js_sink") {
            let start = b.iter().position(|c| matches!(c, b'[' | b'(' | b'!' | b'+')).unwrap_or(0);
            out.push(Hit { class: Class::Xss, rule_id: "xss.js_sink", weight: 85, offset: start, length: (b.len() - start).min(64), detail: "jsfuck".into() });
        }
    }
    let lead = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\0').as_bytes();
    if (lead.len() >= 2 && lead[..2].eq_ignore_ascii_case(b"on")) || seen.ci(b, b"fscommand") || seen.ci(b, b"seeksegmenttime") {
        if let Some(m) = r.bare_handler.find(text) {
            push(out, "xss.event_handler_name", 55, m, text);
        }
    }
}

/// A JavaScript sink written as a name in prose rather than called: `eval()`, `setTimeout()`
/// with nothing to run; `print()`, `alert()` after a word (`a replacement for print()`; a probe
/// follows markup, a quote, `=`, `:`, `;`, an operator or nothing: `onerror=print()`,
/// `';alert()//`); `Window.open`, `Document.write` capitalised (JavaScript is case-sensitive:
/// those are interface names, not the objects).
fn sink_named_in_prose(text: &str, m: &regex::Match) -> bool {
    let s = m.as_str();
    let squeezed: String = s.chars().filter(|c| !c.is_whitespace() && *c != '\0').collect::<String>().to_ascii_lowercase();
    let before = &text[..m.start()];
    // (a quote, `;`, `<`, `>`, `{` or `=` before the match opens code: not prose)
    let code_before = || before.contains(['\'', '"', '`', ';', '<', '>', '{', '=']);
    // `(uses eval)`, `system prompt)`, `(G-Eval)`: a sink's name closing a parenthesis of prose
    // (passed as a callback it follows `(`, `,` or `=`: `[1].map(alert)`, `onerror=alert)`)
    if squeezed.ends_with(')') && !squeezed.contains('(') {
        let prev = before.chars().next_back();
        let prose_prev = prev.is_some_and(char::is_whitespace)
            || prev == Some('-') && before[..before.len() - 1].chars().next_back().is_some_and(char::is_alphabetic);
        if prose_prev && !code_before() {
            return true;
        }
    }
    if let Some(name) = squeezed.strip_suffix("()") {
        if matches!(name, "eval" | "settimeout" | "setinterval" | "execscript" | "importscripts" | "atob" | "fromcharcode") {
            return true;
        }
        if matches!(name, "alert" | "prompt" | "confirm" | "print" | "msgbox") {
            // (after a word that is not a JavaScript keyword evaluating it, `void alert()`,
            // `typeof print()`, and with nothing before it that opens code: a quote, `;`, `<`,
            // `{`, `=`, `(`, a backtick)
            let word = before.trim_end().rsplit(|c: char| !c.is_alphanumeric()).next().unwrap_or("");
            let keyword = matches!(
                word.to_ascii_lowercase().as_str(),
                "void" | "typeof" | "throw" | "return" | "new" | "await" | "delete" | "yield" | "in" | "of" | "case" | "do" | "else" | "instanceof"
            );
            return !word.is_empty() && !keyword && !code_before() && !before.contains('(');
        }
    }
    // (compared as bytes: a match may hold multi-byte white space, `Alert\u{3000}(`)
    let b = s.as_bytes();
    ["window", "document", "location"].iter().any(|w| {
        b.len() > w.len() && b[0].is_ascii_uppercase() && b[1..w.len()].iter().all(|c| c.is_ascii_lowercase()) && b[..w.len()].eq_ignore_ascii_case(w.as_bytes())
    })
}
