//! tradeguard injection-detection engine (pure Rust, no pgrx).
//!
//! Pipeline: quick pre-filter (plainly benign values allocate nothing) -> decoding
//! (URL, HTML entities, `\u`/`\x` escapes, look-alikes, NUL) -> four detectors
//! (SQL tokenizer + structural rules, HTML-aware XSS scan, shell command injection,
//! path traversal) run on the decoded text and, when decoding changed it, on the raw
//! text too -> a score per finding, thresholded per context.
//!
//! Everything is linear in the input length: decoding is a bounded number of linear
//! passes, the SQL tokenizer is single pass, and the regexes use the `regex` crate
//! (finite automata, no backtracking).

mod cmdi;
mod decode;
mod sqli;
mod traversal;
mod xss;

#[cfg(test)]
mod corpus_test;
#[cfg(test)]
mod tests;

pub const RULESET_VERSION: &str = "2026.12.6.1";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    Auto,
    Identifier,
    FreeText,
    Url,
    Path,
}

impl Context {
    pub fn parse(s: &str) -> Option<Context> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Some(Context::Auto),
            "identifier" => Some(Context::Identifier),
            "free_text" => Some(Context::FreeText),
            "url" => Some(Context::Url),
            "path" => Some(Context::Path),
            _ => None,
        }
    }

    /// Minimum score for a verdict of attack.
    fn threshold(self) -> u8 {
        match self {
            Context::Identifier => 40,
            Context::Auto | Context::Url | Context::Path => 50,
            Context::FreeText => 70,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    Sqli,
    Xss,
    Cmdi,
    Traversal,
}

impl Class {
    pub fn as_str(&self) -> &'static str {
        match self {
            Class::Sqli => "sqli",
            Class::Xss => "xss",
            Class::Cmdi => "cmdi",
            Class::Traversal => "traversal",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Finding {
    pub class: Class,
    pub rule_id: &'static str,
    pub offset: usize,
    pub length: usize,
    pub decoding: Vec<&'static str>,
    pub detail: String,
}

#[derive(Clone, Debug)]
pub struct Verdict {
    pub is_attack: bool,
    pub score: u8,
    pub classes: Vec<Class>,
    pub findings: Vec<Finding>,
}

impl Verdict {
    pub fn findings_json(&self) -> serde_json::Value {
        serde_json::Value::Array(
            self.findings
                .iter()
                .map(|f| {
                    serde_json::json!({
                        "class": f.class.as_str(),
                        "rule_id": f.rule_id,
                        "offset": f.offset,
                        "length": f.length,
                        "decoding": f.decoding,
                        "detail": f.detail,
                    })
                })
                .collect(),
        )
    }

    fn benign() -> Verdict {
        Verdict { is_attack: false, score: 0, classes: Vec::new(), findings: Vec::new() }
    }
}

/// ASCII case-insensitive substring test (needle must be lowercase). Linear for a
/// fixed needle; used to skip regexes that cannot match.
pub(crate) fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    if needle.is_empty() {
        return true;
    }
    if hay.len() < needle.len() {
        return false;
    }
    let first = needle[0];
    let mut i = 0;
    let last = hay.len() - needle.len();
    while i <= last {
        if hay[i].to_ascii_lowercase() == first && hay[i..i + needle.len()].iter().zip(needle).all(|(a, b)| a.to_ascii_lowercase() == *b) {
            return true;
        }
        i += 1;
    }
    false
}

/// Internal detector hit, before context weighting.
#[derive(Clone, Debug)]
pub(crate) struct Hit {
    pub class: Class,
    pub rule_id: &'static str,
    pub weight: u8,
    pub offset: usize,
    pub length: usize,
    pub detail: String,
}

pub struct RuleInfo {
    pub id: &'static str,
    pub class: Class,
    pub description: &'static str,
}

static RULES: &[RuleInfo] = &[
    RuleInfo { id: "sqli.union_select", class: Class::Sqli, description: "UNION [ALL] SELECT appended to a value" },
    RuleInfo { id: "sqli.quote_probe", class: Class::Sqli, description: "a run of both quotes and a parenthesis ('\"(), the syntax-error probe of scanners (below the free-text threshold)" },
    RuleInfo { id: "sqli.stacked_query", class: Class::Sqli, description: "statement separator followed by a well-formed SQL statement" },
    RuleInfo { id: "sqli.too_long_to_inspect", class: Class::Sqli, description: "a value past the SQL tokenizer's cap (200 000 tokens): its tail is not read, so it is not passed as clean" },
    RuleInfo { id: "sqli.time_delay", class: Class::Sqli, description: "time-based blind: sleep(), pg_sleep(), benchmark(), WAITFOR DELAY, dbms_pipe.receive_message(), randomblob()" },
    RuleInfo { id: "sqli.dangerous_function", class: Class::Sqli, description: "file/OS/network access functions (load_file, xp_cmdshell, pg_read_file, utl_http, dbms_*)" },
    RuleInfo { id: "sqli.error_based", class: Class::Sqli, description: "error-based extraction functions (extractvalue, updatexml, utl_inaddr)" },
    RuleInfo { id: "sqli.breakout_logic", class: Class::Sqli, description: "quote closed, then AND/OR/XOR with an SQL operand" },
    RuleInfo { id: "sqli.breakout_comment", class: Class::Sqli, description: "quote closed, then a comment truncating the query" },
    RuleInfo { id: "sqli.breakout_stacked", class: Class::Sqli, description: "quote closed, then a statement separator" },
    RuleInfo { id: "sqli.breakout_operator", class: Class::Sqli, description: "quote closed, then an operator joining a function, subquery or string" },
    RuleInfo { id: "sqli.breakout_clause", class: Class::Sqli, description: "quote (or a number's parenthesis) closed, then WHERE / ORDER BY / GROUP BY / HAVING / INTO OUTFILE / LIMIT" },
    RuleInfo { id: "sqli.breakout_statement", class: Class::Sqli, description: "quote closed, then a statement (MSSQL stacking without ';')" },
    RuleInfo { id: "sqli.breakout_value_list", class: Class::Sqli, description: "quote closed inside a VALUES list, followed by more SQL" },
    RuleInfo { id: "sqli.tautology", class: Class::Sqli, description: "AND/OR followed by an always-true comparison (1=1, 'a'='a', OR 1--)" },
    RuleInfo { id: "sqli.blind_boolean", class: Class::Sqli, description: "AND/OR followed by a SQL function call or subquery (boolean/arithmetic blind)" },
    RuleInfo { id: "sqli.select_from", class: Class::Sqli, description: "a well-formed SELECT ... FROM ... statement" },
    RuleInfo { id: "sqli.subquery", class: Class::Sqli, description: "parenthesised SELECT" },
    RuleInfo { id: "sqli.order_by_probe", class: Class::Sqli, description: "value followed by ORDER BY/GROUP BY n (column-count probing)" },
    RuleInfo { id: "sqli.into_outfile", class: Class::Sqli, description: "INTO OUTFILE / DUMPFILE" },
    RuleInfo { id: "sqli.system_variable", class: Class::Sqli, description: "@@system variable" },
    RuleInfo { id: "sqli.system_catalog", class: Class::Sqli, description: "reference to a system catalog (information_schema, sysobjects, pg_catalog...)" },
    RuleInfo { id: "sqli.mysql_exec_comment", class: Class::Sqli, description: "MySQL executable comment /*! ... */ hiding SQL" },
    RuleInfo { id: "sqli.comment_terminated", class: Class::Sqli, description: "value, logic and comparison closed by a trailing comment" },
    RuleInfo { id: "sqli.union_probe", class: Class::Sqli, description: "value followed by UNION and a column list (union column probing)" },
    RuleInfo { id: "sqli.constant_condition", class: Class::Sqli, description: "AND/OR followed by a constant comparison (8=3, 1+2=3+4): boolean/arithmetic blind" },
    RuleInfo { id: "sqli.info_function", class: Class::Sqli, description: "server fingerprinting call: version(), user(), database(), current_user()..." },
    RuleInfo { id: "sqli.blind_arithmetic", class: Class::Sqli, description: "number combined arithmetically with an SQL function (123+ascii(substring(...)))" },
    RuleInfo { id: "sqli.expression_comment", class: Class::Sqli, description: "a pure SQL expression (no words) truncated by a trailing comment" },
    RuleInfo { id: "sqli.full_statement", class: Class::Sqli, description: "the value is a well-formed SQL statement" },
    RuleInfo { id: "sqli.clause_probe", class: Class::Sqli, description: "value starting with LIMIT n[,m]" },
    RuleInfo { id: "sqli.conditional_probe", class: Class::Sqli, description: "IIF/IF/ELT/DECODE with a constant condition (conditional error/boolean probes)" },
    RuleInfo { id: "sqli.operator_probe", class: Class::Sqli, description: "short quote-operator-quote probe (x' AND 'y, '||')" },
    RuleInfo { id: "sqli.case_expression", class: Class::Sqli, description: "CASE WHEN ... THEN ... END expression" },
    RuleInfo { id: "sqli.log_evasion", class: Class::Sqli, description: "sp_password in a comment (MSSQL log hiding)" },
    RuleInfo { id: "xss.script_tag", class: Class::Xss, description: "<script> or </script>" },
    RuleInfo { id: "xss.event_handler", class: Class::Xss, description: "tag with an on*= event-handler attribute" },
    RuleInfo { id: "xss.event_handler_attr", class: Class::Xss, description: "attribute breakout with an on*= handler running code" },
    RuleInfo { id: "xss.event_handler_name", class: Class::Xss, description: "a bare DOM event-handler name (attribute probing)" },
    RuleInfo { id: "xss.dangerous_tag", class: Class::Xss, description: "iframe, object, embed, svg, math, base, meta, link, style, form... tags" },
    RuleInfo { id: "xss.meta_refresh", class: Class::Xss, description: "meta http-equiv refresh / set-cookie" },
    RuleInfo { id: "xss.script_url", class: Class::Xss, description: "javascript:/vbscript: URL (also with whitespace/entity obfuscation)" },
    RuleInfo { id: "xss.data_url", class: Class::Xss, description: "data:text/html or other scriptable data: URL" },
    RuleInfo { id: "xss.style_injection", class: Class::Xss, description: "CSS expression(), behavior, -moz-binding, @import, <style>" },
    RuleInfo { id: "xss.dangerous_attribute", class: Class::Xss, description: "srcdoc, formaction, xlink:href, framework directive attributes" },
    RuleInfo { id: "xss.template_injection", class: Class::Xss, description: "client-side template expression reaching constructor/$eval" },
    RuleInfo { id: "xss.js_sink", class: Class::Xss, description: "JavaScript sink (alert(, eval(, document.cookie...), strong after a string breakout" },
    RuleInfo { id: "xss.html_tag", class: Class::Xss, description: "HTML tag loading a URL (src/href/action=scheme:) or document structure tags" },
    RuleInfo { id: "xss.markup_declaration", class: Class::Xss, description: "conditional comments, CDATA, <?xml/<?import, <!ENTITY, xmlns" },
    RuleInfo { id: "xss.angle_bracket_probe", class: Class::Xss, description: "a lone '<' (markup probe)" },
    RuleInfo { id: "xss.encoded_markup", class: Class::Xss, description: "'<' present only after decoding (&#x3C; %3C \\u003c +ADw-)" },
    RuleInfo { id: "cmdi.separator_probe", class: Class::Cmdi, description: "value made only of shell separators (; | & newline)" },
    RuleInfo { id: "cmdi.separator_command", class: Class::Cmdi, description: "shell separator (; | || && & newline) followed by a command" },
    RuleInfo { id: "cmdi.leading_command", class: Class::Cmdi, description: "value starting with a shell command and shell-like arguments" },
    RuleInfo { id: "cmdi.substitution", class: Class::Cmdi, description: "$(...) or backtick command substitution" },
    RuleInfo { id: "cmdi.ifs_evasion", class: Class::Cmdi, description: "${IFS}, $IFS$9, parameter-expansion tricks, ANSI-C quoting ($'\\x69\\x64') and brace expansion ({cat,/etc/passwd}) after a separator" },
    RuleInfo { id: "cmdi.glob_path", class: Class::Cmdi, description: "command named by a wildcard path after a separator (;/bin/ca?)" },
    RuleInfo { id: "cmdi.jndi_lookup", class: Class::Cmdi, description: "JNDI lookup (Log4Shell), nested-lookup obfuscation included" },
    RuleInfo { id: "cmdi.shellshock", class: Class::Cmdi, description: "() { :;}; function-definition exploit" },
    RuleInfo { id: "cmdi.ssi", class: Class::Cmdi, description: "server-side include directive" },
    RuleInfo { id: "cmdi.template_injection", class: Class::Cmdi, description: "server-side template expression probe ({{7*7}}, ${7*7})" },
    RuleInfo { id: "cmdi.arithmetic_probe", class: Class::Cmdi, description: "shell arithmetic expansion $((12+34)), the echo probe of command injection tools" },
    RuleInfo { id: "cmdi.code_exec", class: Class::Cmdi, description: "system()/exec()/eval() call with a string argument" },
    RuleInfo { id: "cmdi.code_breakout", class: Class::Cmdi, description: "quote or statement breakout into script code closed by a comment (';exit(md5(1));//)" },
    RuleInfo { id: "traversal.dot_dot", class: Class::Traversal, description: "../ or ..\\ segment after decoding" },
    RuleInfo { id: "traversal.sensitive_path", class: Class::Traversal, description: "sensitive system file (/etc/passwd, /proc/self, win.ini, boot.ini...)" },
    RuleInfo { id: "traversal.nul_terminated", class: Class::Traversal, description: "NUL byte truncating a file name (file.php%00.jpg)" },
    RuleInfo { id: "traversal.nul_byte", class: Class::Traversal, description: "NUL byte in a path" },
    RuleInfo { id: "traversal.file_url", class: Class::Traversal, description: "file:// URL" },
    RuleInfo { id: "traversal.stream_wrapper", class: Class::Traversal, description: "PHP stream wrapper that reads or runs files (php://filter, php://input, expect://, phar://, data:;base64 PHP code), or a gopher:// / dict:// URL (server-side request to an internal service)" },
    RuleInfo { id: "traversal.unc_path", class: Class::Traversal, description: "Windows network path to a script or program, or through WebDAV (\\\\host\\share\\x.php, \\\\host@SSL\\DavWWWRoot\\x): remote file inclusion" },
    RuleInfo { id: "traversal.ntfs_stream", class: Class::Traversal, description: "NTFS alternate data stream on a file name (index.php::$DATA)" },
    RuleInfo { id: "traversal.metadata_endpoint", class: Class::Traversal, description: "cloud instance metadata endpoint, the credentials a forged server-side request reads (169.254.169.254/latest/meta-data, metadata.google.internal), and internal APIs a forged request reaches (kubernetes.default.svc/api, the Docker daemon on 127.0.0.1:2375)" },
    RuleInfo { id: "traversal.remote_include", class: Class::Traversal, description: "remote file inclusion: a URL of a script or text file with an empty query (http://host/shell.txt?), or a script over ftp://" },
    RuleInfo { id: "identifier.structural_chars", class: Class::Sqli, description: "identifier context: quote, comment, separator or markup characters" },
];

pub fn rules() -> &'static [RuleInfo] {
    RULES
}

/// Characters that can matter for any detector. A value made only of other characters
/// (letters, digits, space, `,.:@/-_`, non-ASCII text) can only be an attack through
/// a few keywords, checked by `plain_needs_check`.
#[inline]
fn special_byte(b: u8) -> bool {
    !(b.is_ascii_alphanumeric() || matches!(b, b' ' | b',' | b'.' | b':' | b'@' | b'/' | b'-' | b'_' | b'?' | b'!') || b >= 0x80)
}

/// For plain values: is there anything a detector could still use?
fn plain_needs_check(s: &[u8]) -> bool {
    // `1 AND 0`, `2 or 1`: a number, AND or OR, then 0 or 1 (the boolean-blind pair; see
    // sqli.rs), the one SQL condition a value of plain characters can be.
    let unsigned = s.strip_prefix(b"-").unwrap_or(s);
    if unsigned.first().is_some_and(u8::is_ascii_digit) {
        let mut words = unsigned.split(|b| b.is_ascii_whitespace()).filter(|w| !w.is_empty());
        if let (Some(a), Some(logic), Some(b), None) = (words.next(), words.next(), words.next(), words.next()) {
            if a.iter().all(u8::is_ascii_digit) && (logic.eq_ignore_ascii_case(b"and") || logic.eq_ignore_ascii_case(b"or")) && matches!(b, b"0" | b"1") {
                return true;
            }
        }
    }
    let n = s.len();
    let mut i = 0;
    while i < n {
        let b = s[i] | 0x20;
        let rest = &s[i..];
        let starts = |w: &[u8]| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w);
        match b {
            b'u' if starts(b"union") => return true,
            b's' if starts(b"select") => return true,
            b'e' if starts(b"etc/") => return true,
            b'p' if starts(b"proc/") => return true,
            // (`WEB-INF/`, `autoexec.bat`: sensitive paths the traversal check knows, which a
            // value of plain characters can name; not `/var/log/...`, which notes cite)
            b'w' if starts(b"web-inf") => return true,
            b'a' if starts(b"autoexec") => return true,
            b'.' if starts(b"..") || starts(b".ini") || starts(b"./") => return true,
            b'w' if starts(b"win") => return true,
            b'o' if starts(b"on") && (i == 0 || !s[i - 1].is_ascii_alphanumeric()) => return true,
            b'j' | b'v' | b'd' if starts(b"javascript") || starts(b"vbscript") || starts(b"data:") => return true,
            b'-' if starts(b"--") => return true,
            // (netcat's and find's options that run a shell: `host 4444 -e /bin/sh`)
            b'-' if starts(b"-e /bin/") || starts(b"-exec ") => return true,
            b'/' if starts(b"/*") => return true,
            b'x' if starts(b"xp_") => return true,
            b'b' if starts(b"boot") => return true,
            b'.' if starts(b".ht") || starts(b".ssh") || starts(b".bash") => return true,
            b'c' if starts(b"config") => return true,
            b'g' if starts(b"global.asa") => return true,
            b'i' if starts(b"inetpub") || starts(b"id_") => return true,
            b'p' if starts(b"passwd") || starts(b"php:") || starts(b"phar:") => return true,
            b'e' if starts(b"expect:") => return true,
            b'c' if starts(b"compress.") => return true,
            b'g' if starts(b"glob:") => return true,
            b'r' if starts(b"rar:") => return true,
            b'z' if starts(b"zip:") => return true,
            // (URL schemes a server-side fetch speaks to Redis, memcached and the like with)
            b'g' if starts(b"gopher:") => return true,
            b'd' if starts(b"dict:") => return true,
            // (cloud metadata endpoints and the Kubernetes service-account token: named by a URL
            // or a path of plain characters)
            b'1' if starts(b"169.254.1") || starts(b"100.100.100.200") => return true,
            b'm' if starts(b"metadata.google.internal") => return true,
            b'c' if starts(b"computemetadata/") => return true,
            b'e' if starts(b"eks.amazonaws.com/serviceaccount") => return true,
            b'2' if starts(b"2852039166") => return true,
            b'0' if starts(b"0xa9fea9fe") || starts(b"0251.0376.") => return true,
            b'i' if starts(b"instance-data") => return true,
            b'k' if starts(b"kubernetes.io/serviceaccount") || starts(b"kubernetes.default") => return true,
            b':' if starts(b":2375/") || starts(b":2376/") => return true,
            // (`0x2e0x2e0x2f`: dots and slashes as hexadecimal; `..2f..2f`, `Li4vLi4v`: a traversal
            // with its percent signs lost or in base64; `convert.iconv.X.Y`: a PHP filter chain)
            b'0' if starts(b"0x2e") || starts(b"0x2f") || starts(b"0x5c") => return true,
            b'l' if starts(b"Li4vLi4") || starts(b"Ly4uLy4u") || starts(b"Li5cLi5c") || starts(b"Li8uLi8u") => return true,
            b'c' if starts(b"convert.") => return true,
            b's' if starts(b"shadow") || starts(b"system32") || starts(b"sysinfo") || starts(b"seeksegmenttime") => return true,
            b'f' if starts(b"fscommand") => return true,
            b'l' if starts(b"limit") => return true,
            b'i' if starts(b"information_schema") => return true,
            b'o' if starts(b"order") || starts(b"outfile") => return true,
            b'g' if starts(b"group") => return true,
            _ => {}
        }
        i += 1;
    }
    // a value that is one file path (`/usr/local/apache2/conf/httpd.conf`), or starts with a
    // shell command ("cat /etc/..", "ls -la")
    // (and a URL that ends with an empty query, or one over FTP: remote file inclusion)
    let url = |p: &[u8]| s.len() > p.len() && s[..p.len()].eq_ignore_ascii_case(p);
    std::str::from_utf8(s).is_ok_and(traversal::path_value)
        || leading_word_is_command(s)
        || (s.ends_with(b"?") && (url(b"http://") || url(b"https://") || url(b"ftp://")))
        || url(b"ftp://")
}

fn leading_word_is_command(s: &[u8]) -> bool {
    let w: Vec<u8> = s.iter().take_while(|b| b.is_ascii_alphanumeric()).map(|b| b.to_ascii_lowercase()).collect();
    if w.is_empty() {
        return false;
    }
    if matches!(&w[..], b"whoami" | b"uname" | b"ifconfig" | b"ipconfig" | b"netstat" | b"systeminfo" | b"sysinfo" | b"wget" | b"curl" | b"netsh" | b"tasklist" | b"wmic" | b"powershell" | b"certutil" | b"phpinfo" | b"nslookup") {
        return true;
    }
    if w.len() == s.len() {
        return false;
    }
    matches!(&w[..], b"cat" | b"ls" | b"id" | b"ping" | b"sleep" | b"wget" | b"curl" | b"nc" | b"bash" | b"sh" | b"echo" | b"type" | b"dir" | b"which" | b"whoami" | b"uname" | b"net" | b"ps" | b"nslookup" | b"find" | b"grep" | b"more" | b"head" | b"tail" | b"perl" | b"python" | b"php" | b"reg" | b"sc")
}

/// Identifier context: characters beyond `[A-Za-z0-9_.:@/-]` + spaces that look structural.
fn identifier_hits(text: &str, out: &mut Vec<Hit>) {
    for (i, b) in text.bytes().enumerate() {
        let class = match b {
            b'\'' | b'"' | b';' | b'=' | b'`' => Some(Class::Sqli),
            b'<' | b'>' => Some(Class::Xss),
            b'|' | b'&' | b'$' => Some(Class::Cmdi),
            b'\\' | 0 => Some(Class::Traversal),
            b'(' | b')' | b'#' | b'*' | b'%' | b'{' | b'}' => Some(Class::Sqli),
            b'\n' | b'\r' => Some(Class::Cmdi),
            _ => None,
        };
        let class = match class {
            Some(c) => c,
            None => {
                if b == b'-' && text.as_bytes().get(i + 1) == Some(&b'-') {
                    Class::Sqli
                } else if b == b'.' && text.as_bytes().get(i + 1) == Some(&b'.') {
                    Class::Traversal
                } else {
                    continue;
                }
            }
        };
        out.push(Hit {
            class,
            rule_id: "identifier.structural_chars",
            weight: 45,
            offset: i,
            length: 1,
            detail: format!("char={:?}", text[i..].chars().next().unwrap_or(' ')),
        });
        return;
    }
}

struct Scan {
    hits: Vec<(Hit, bool)>, // (hit, from decoded view)
    steps: Vec<&'static str>,
}

/// Which byte values occur in the text (one pass; lets detectors skip work).
pub(crate) struct Seen([bool; 256]);

impl Seen {
    fn of(b: &[u8]) -> Seen {
        let mut s = [false; 256];
        for &c in b {
            s[c as usize] = true;
        }
        Seen(s)
    }
    #[inline]
    pub(crate) fn has(&self, c: u8) -> bool {
        self.0[c as usize]
    }
    /// `contains_ci`, skipped when a byte of the needle never occurs (in either case).
    #[inline]
    pub(crate) fn ci(&self, hay: &[u8], needle: &[u8]) -> bool {
        needle.iter().all(|&c| self.0[c as usize] || self.0[c.to_ascii_uppercase() as usize]) && contains_ci(hay, needle)
    }
    #[inline]
    pub(crate) fn any(&self, cs: &[u8]) -> bool {
        cs.iter().any(|&c| self.0[c as usize])
    }
}

/// Run all detectors on one view. With `early`, stop as soon as a single hit decides
/// the verdict (scores only grow with more hits, so the decision is unchanged).
fn run_detectors(text: &str, ctx: Context, had_nul: bool, early: bool, out: &mut Vec<Hit>) {
    let decided = |out: &Vec<Hit>| early && out.iter().any(|h| context_weight(ctx, h) >= ctx.threshold());
    let b = text.as_bytes();
    let seen = Seen::of(b);
    // Unquoted, in a string ('...' or "..."), in a MySQL identifier (`...`) or in a PostgreSQL
    // dollar-quoted string ($$...$$): a value that closes its context and goes on as SQL.
    let quotes: &[Option<u8>] = &[None, Some(b'\''), Some(b'"'), Some(b'`'), Some(sqli::DOLLAR)];
    {
        sqli::scan(text, quotes, out);
        if decided(out) {
            return;
        }
    }
    let lead = text.trim_start_matches(|c: char| c.is_whitespace() || c == '\0').as_bytes();
    let leads_on = lead.len() >= 2 && lead[..2].eq_ignore_ascii_case(b"on");
    if seen.any(b"<>=(`:&\\%{[") || leads_on || seen.ci(b, b"fscommand") || seen.ci(b, b"seeksegmenttime") {
        xss::scan(text, &seen, out);
        if decided(out) {
            return;
        }
    }
    // (and options that make a program run a command: `-oProxyCommand=`, `--checkpoint-action=exec=`,
    // git's `--upload-pack=`, tar's `--use-compress-program=`, netcat's `-e /bin/sh`, find's `-exec`)
    let option_runs = || {
        seen.has(b'-')
            && (seen.has(b'=') && (seen.ci(b, b"proxycommand") || seen.ci(b, b"checkpoint-action") || seen.ci(b, b"upload-pack") || seen.ci(b, b"compress-program") || seen.ci(b, b"to-command"))
                || seen.ci(b, b" -e ") || seen.ci(b, b"-exec "))
    };
    if seen.any(b";|&\n\r`$'\"({<\x1b") || leading_word_is_command(lead) || option_runs() {
        cmdi::scan(text, &seen, out);
        if decided(out) {
            return;
        }
    }
    if seen.any(b"/\\\0%") || seen.ci(b, b"0x2f") || seen.ci(b, b"0x5c") || seen.ci(b, b"li4") || seen.ci(b, b"ly4u") || seen.ci(b, b"li5c") || seen.ci(b, b"li8u") || seen.ci(b, b"convert.") || (seen.has(b'.') && [&b"ini"[..], b".ht", b"config", b"asa", b"sys", b"bat", b"id_", b"bash", b"ssh", b".."].iter().any(|w| seen.ci(b, w))) || seen.ci(b, b"0x2e") || (seen.has(b':') && (seen.has(b'$') || seen.ci(b, b";base64,"))) {
        traversal::scan(text, had_nul, ctx == Context::Path, out);
    }
    if ctx == Context::Identifier {
        identifier_hits(text, out);
    }
}

/// A reading of a value: its text as a step rewrites it, or None if the step does not apply.
type Reading = fn(&str) -> Option<String>;

fn scan(input: &str, ctx: Context, early: bool) -> Option<Scan> {
    let b = input.as_bytes();
    if b.is_empty() {
        return None;
    }
    // Look-alikes of ASCII punctuation (full-width ．／＜, ∕, ․ ...) count as special: they are
    // folded before detection, so a value made of them is not plain.
    let any_special = b.iter().any(|&c| special_byte(c))
        || (!b.is_ascii() && input.chars().any(|c| (c as u32) >= 0x80 && decode::fold_lookalike(c as u32).is_some()));
    if !any_special {
        // Plain value: nothing to decode, no quotes/markup/separators. Only keywords,
        // bare command/handler names and sensitive paths can matter.
        if !plain_needs_check(b) {
            return None;
        }
        let mut hits: Vec<Hit> = Vec::new();
        run_detectors(input, ctx, false, early, &mut hits);
        let mut steps = Vec::new();
        // (the readings a plain value can have: a path as the system resolves it, keywords
        // written inside themselves; tried in turn until one finds something)
        let readings: [(&str, Reading); 2] = [("path_normalized", decode::normalized_path), ("nested_keyword", decode::nested_keywords_removed)];
        for (step, reading) in readings {
            if !hits.is_empty() {
                break;
            }
            if let Some(n) = reading(input) {
                run_detectors(&n, ctx, false, early, &mut hits);
                if !hits.is_empty() {
                    steps.push(step);
                }
            }
        }
        return Some(Scan { hits: hits.into_iter().map(|h| (h, true)).collect(), steps });
    }
    let dec = decode::decode(input, ctx == Context::Url);
    let mut hits: Vec<Hit> = Vec::new();
    run_detectors(&dec.text, ctx, dec.had_nul, early, &mut hits);
    xss::encoded_markup(input, &dec.text, &mut hits);
    let done = early && hits.iter().any(|h| context_weight(ctx, h) >= ctx.threshold());
    let mut all: Vec<(Hit, bool)> = hits.into_iter().map(|h| (h, true)).collect();
    let decoded_changed = dec.text != input;
    if decoded_changed && !done {
        let mut raw_hits = Vec::new();
        run_detectors(input, ctx, input.as_bytes().contains(&0), early, &mut raw_hits);
        for h in raw_hits {
            if !all.iter().any(|(o, _)| o.rule_id == h.rule_id) {
                all.push((h, false));
            }
        }
    }
    let mut steps = dec.steps;
    if !all.iter().any(|(h, _)| context_weight(ctx, h) >= ctx.threshold()) {
        let mut variants = decode::evasion_variants(&dec.text);
        // (a shell reads the backslashes of the value as written, before any decoder would:
        // `;\u\n\a\m\e` is `;uname` to it, where the decoder took `\n` for a line break)
        if decoded_changed {
            variants.extend(decode::evasion_variants(input).into_iter().filter(|(step, _)| *step == "shell_dequote"));
        }
        for (step, variant) in variants {
            let mut more = Vec::new();
            run_detectors(&variant, ctx, dec.had_nul, early, &mut more);
            if !more.is_empty() {
                steps.push(step);
            }
            for h in more {
                if !all.iter().any(|(o, _)| o.rule_id == h.rule_id) {
                    all.push((h, true));
                }
            }
        }
    }
    Some(Scan { hits: all, steps })
}

fn context_weight(ctx: Context, h: &Hit) -> u8 {
    let mut w = h.weight as i32;
    match ctx {
        Context::Path if h.class == Class::Traversal => w += 10,
        // free text: tolerate weak signals
        Context::FreeText if w < 70 => w -= 10,
        _ => {}
    }
    w.clamp(0, 100) as u8
}

fn score(ctx: Context, hits: &[(Hit, bool)]) -> u8 {
    let mut best = 0u8;
    let mut extra = 0u32;
    for (h, _) in hits {
        let w = context_weight(ctx, h);
        if w > best {
            if best > 0 {
                extra += 1;
            }
            best = w;
        } else {
            extra += 1;
        }
    }
    (best as u32 + 5 * extra.min(4)).min(100) as u8
}

pub fn check(input: &str, ctx: Context) -> Verdict {
    let s = match scan(input, ctx, false) {
        Some(s) => s,
        None => return Verdict::benign(),
    };
    if s.hits.is_empty() {
        return Verdict::benign();
    }
    let score = score(ctx, &s.hits);
    let is_attack = score >= ctx.threshold();
    let mut classes: Vec<Class> = s.hits.iter().map(|(h, _)| h.class).collect();
    classes.sort();
    classes.dedup();
    let mut findings: Vec<Finding> = s
        .hits
        .into_iter()
        .map(|(h, decoded)| Finding {
            class: h.class,
            rule_id: h.rule_id,
            offset: h.offset,
            length: h.length,
            decoding: if decoded { s.steps.clone() } else { Vec::new() },
            detail: truncate(&h.detail, 96),
        })
        .collect();
    findings.sort_by(|a, b| a.class.cmp(&b.class).then(a.offset.cmp(&b.offset)));
    Verdict { is_attack, score, classes, findings }
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub fn is_attack(input: &str, ctx: Context) -> bool {
    match scan(input, ctx, true) {
        Some(s) => !s.hits.is_empty() && score(ctx, &s.hits) >= ctx.threshold(),
        None => false,
    }
}
