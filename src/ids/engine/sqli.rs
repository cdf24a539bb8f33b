//! SQL injection detection by structure: a single-pass SQL tokenizer (covering the
//! lexical quirks of PostgreSQL, MySQL, MSSQL and Oracle) and rules over the token
//! sequence. The input is tokenized as-is and, when it contains a quote, as if it
//! were placed inside '...' or "..." (the first quote then closes the string).

use super::{Class, Hit};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tk {
    Str,
    Num,
    Kw,
    Stmt,
    Union,
    Logic,
    Op,
    Cmp,
    Func,
    Bare,
    Var,
    Comment,
    Semi,
    LParen,
    RParen,
    Comma,
    Dot,
}

impl Tk {
    pub fn ch(self) -> char {
        match self {
            Tk::Str => 's',
            Tk::Num => '1',
            Tk::Kw => 'k',
            Tk::Stmt => 'E',
            Tk::Union => 'U',
            Tk::Logic => '&',
            Tk::Op => 'o',
            Tk::Cmp => '=',
            Tk::Func => 'f',
            Tk::Bare => 'n',
            Tk::Var => 'v',
            Tk::Comment => 'c',
            Tk::Semi => ';',
            Tk::LParen => '(',
            Tk::RParen => ')',
            Tk::Comma => ',',
            Tk::Dot => '.',
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Token {
    pub kind: Tk,
    pub start: usize,
    pub end: usize,
    /// canonical lowercase keyword / operator, "" for other words
    pub kw: &'static str,
    /// string: closed; comment: MySQL executable comment marker
    pub flag: bool,
}

/// Cap on tokens per view, keeps memory bounded for huge inputs.
const MAX_TOKENS: usize = 200_000;

fn classify(word: &str) -> (Tk, &'static str) {
    macro_rules! kw {
        ($t:expr, $($w:literal),*) => { match word { $($w => return ($t, $w),)* _ => {} } };
    }
    kw!(Tk::Union, "union");
    kw!(Tk::Logic, "and", "or", "xor");
    kw!(Tk::Op, "not", "div", "mod", "binary", "collate", "escape");
    kw!(Tk::Cmp, "like", "rlike", "regexp", "is", "in", "between", "sounds", "glob", "ilike", "similar");
    kw!(
        Tk::Stmt, "select", "insert", "update", "delete", "drop", "create", "alter", "truncate", "exec",
        "execute", "declare", "waitfor", "shutdown", "grant", "revoke", "merge", "call", "load", "copy",
        "handler", "if", "set", "show", "use", "begin", "replace", "rename", "kill", "backup", "restore",
        "dbcc", "do", "prepare", "deallocate", "open", "fetch", "pragma", "attach", "reset", "vacuum",
        "cluster", "discard", "reassign", "reindex", "checkpoint", "import"
    );
    kw!(
        Tk::Kw, "from", "where", "having", "group", "order", "by", "limit", "offset", "into", "values",
        "table", "database", "procedure", "outfile", "dumpfile", "null", "true", "false", "case", "when",
        "then", "else", "end", "as", "all", "distinct", "top", "exists", "join", "delay", "time", "for",
        "asc", "desc", "any", "some", "with", "returning", "rownum", "infile", "data", "xml", "program",
        "to", "view", "function", "user", "schema", "index", "trigger", "login", "role", "tables",
        "databases", "columns", "variables", "grants", "inner", "left", "right", "outer", "cross",
        "natural", "on", "using", "analyse", "analyze", "straight_join", "sql_calc_found_rows", "local",
        "share", "mode", "lock", "nowait", "unknown", "elseif", "while", "loop", "leave", "return",
        "current_user", "session_user", "system_user", "current_date", "current_time", "current_timestamp", "utc_date", "utc_time",
        "localtimestamp", "current_role"
    );
    (Tk::Bare, "")
}

/// Words that behave like functions even with whitespace before `(`.
fn known_function(w: &str) -> bool {
    matches!(
        w,
        "ascii" | "substring" | "substr" | "mid" | "char" | "chr" | "nchar" | "concat" | "concat_ws"
            | "length" | "len" | "char_length" | "version" | "user" | "database" | "db_name" | "sleep"
            | "pg_sleep" | "benchmark" | "count" | "cast" | "convert" | "iif" | "ord" | "hex" | "unhex"
            | "lower" | "upper" | "lcase" | "ucase" | "rand" | "floor" | "ceil" | "extractvalue"
            | "updatexml" | "exp" | "elt" | "make_set" | "load_file" | "current_user" | "system_user"
            | "session_user" | "user_name" | "suser_name" | "suser_sname" | "is_srvrolemember"
            | "is_member" | "has_dbaccess" | "object_id" | "object_name" | "schema_name" | "coalesce"
            | "ifnull" | "isnull" | "nullif" | "instr" | "locate" | "position" | "strcmp" | "md5"
            | "sha1" | "sha2" | "group_concat" | "string_agg" | "json_extract" | "xmltype"
            | "randomblob" | "sqlite_version" | "pg_read_file" | "unicode" | "replicate" | "reverse"
            | "space" | "soundex" | "bin" | "oct" | "conv" | "quote" | "row_count" | "found_rows"
            | "last_insert_id" | "connection_id" | "uuid" | "now" | "sysdate" | "getdate"
            | "current_database" | "current_schema" | "current_setting" | "inet_server_addr"
            | "to_char" | "to_number" | "decode" | "encode" | "nvl" | "nvl2" | "rawtohex"
            | "sys_context" | "ctxsys" | "xp_cmdshell" | "sys_eval" | "sys_exec" | "if" | "exists"
            | "any" | "all" | "min" | "max" | "sum" | "avg" | "abs" | "sign" | "round" | "trim"
            | "ltrim" | "rtrim" | "lpad" | "rpad" | "left" | "right" | "repeat" | "insert" | "field"
            | "find_in_set" | "json_keys" | "row" | "geometrycollection" | "polygon" | "multipoint"
            | "linestring" | "multilinestring" | "multipolygon" | "gtid_subset" | "name_const"
            | "utl_inaddr" | "dbms_pipe" | "waitfor" | "pi" | "cos" | "sin" | "tan" | "log"
            | "ln" | "sqrt" | "power" | "pow" | "mod" | "div" | "procedure_analyse" | "datalength"
            | "host_name" | "app_name" | "db_id" | "col_name" | "typeof" | "glob" | "zeroblob"
            | "regexp_substring" | "regexp_like" | "like" | "similar_to" | "generate_series"
            | "query_to_xml" | "array_to_string" | "string_to_array" | "lo_import" | "lo_get"
    )
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// A no-break space (U+00A0, MySQL's `%A0` separator) or a replacement character (U+FFFD, an
/// undecodable byte) at `i`: white space between words.
fn wide_space_at(s: &[u8], i: usize) -> bool {
    s[i..].starts_with(&[0xC2, 0xA0]) || s[i..].starts_with(&[0xEF, 0xBF, 0xBD])
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | 0)
}

fn lower_word<'a>(w: &[u8], buf: &'a mut [u8; 40]) -> Option<&'a str> {
    if w.len() > buf.len() {
        return None;
    }
    for (i, &b) in w.iter().enumerate() {
        buf[i] = b.to_ascii_lowercase();
    }
    std::str::from_utf8(&buf[..w.len()]).ok()
}

/// Tokenize. `in_quote`: start inside a string delimited by this quote char.
pub fn tokenize(s: &[u8], in_quote: Option<u8>, out: &mut Vec<Token>) {
    out.clear();
    let n = s.len();
    let mut i = 0;
    let mut in_exec_comment = false;
    if let Some(q) = in_quote {
        // A value that starts with `\'` escapes an escaping application's backslash (`\\'`)
        // or meets a server where backslash is not an escape (standard strings): its quote
        // closes the string.
        let (end, closed) = match q {
            // Inside a MySQL identifier: a doubled backtick is one, a backslash is nothing.
            b'`' => scan_identifier(s, 0),
            // Inside a PostgreSQL dollar-quoted string ($$...$$): only `$$` closes it.
            DOLLAR => s.windows(2).position(|w| w == b"$$").map_or((s.len(), false), |p| (p + 2, true)),
            _ if s.len() >= 2 && s[0] == b'\\' && s[1] == q => (2, true),
            _ => scan_string(s, 0, q),
        };
        out.push(Token { kind: Tk::Str, start: 0, end, kw: "", flag: closed });
        i = end;
        if !closed {
            return;
        }
    }
    let mut buf = [0u8; 40];
    while i < n && out.len() < MAX_TOKENS {
        let b = s[i];
        if is_space(b) {
            i += 1;
            continue;
        }
        if b >= 0xC2 && wide_space_at(s, i) {
            i += if b == 0xC2 { 2 } else { 3 };
            continue;
        }
        let start = i;
        match b {
            b'\'' | b'"' => {
                let (end, closed) = scan_string(s, i + 1, b);
                out.push(Token { kind: Tk::Str, start, end, kw: "", flag: closed });
                i = end;
            }
            b'`' => {
                let mut j = i + 1;
                while j < n && s[j] != b'`' {
                    j += 1;
                }
                let end = if j < n { j + 1 } else { n };
                out.push(Token { kind: Tk::Bare, start, end, kw: "", flag: false });
                i = end;
            }
            b'0'..=b'9' => {
                i = scan_number(s, i);
                // A name that starts with digits (`2on2hockeyDB`: MySQL allows it) is one
                // bare word, not a number and a keyword.
                if i < n && (s[i].is_ascii_alphabetic() || s[i] == b'_') && s[start..i].iter().all(|c| c.is_ascii_digit()) {
                    let mut j = i;
                    while j < n && is_word_byte(s[j]) {
                        j += 1;
                    }
                    if s[i..j].iter().any(|c| c.is_ascii_digit()) {
                        out.push(Token { kind: Tk::Bare, start, end: j, kw: "", flag: false });
                        i = j;
                        continue;
                    }
                }
                out.push(Token { kind: Tk::Num, start, end: i, kw: "", flag: false });
            }
            b'.' if i + 1 < n && s[i + 1].is_ascii_digit() => {
                i = scan_number(s, i);
                out.push(Token { kind: Tk::Num, start, end: i, kw: "", flag: false });
            }
            b'@' => {
                let mut j = i + 1;
                if j < n && s[j] == b'@' {
                    j += 1;
                }
                while j < n && (is_word_byte(s[j]) || s[j] == b'.') {
                    j += 1;
                }
                out.push(Token { kind: Tk::Var, start, end: j, kw: if j > i + 1 && s[i + 1] == b'@' { "@@" } else { "@" }, flag: false });
                i = j;
            }
            b'#' => {
                let mut j = i + 1;
                while j < n && s[j] != b'\n' {
                    j += 1;
                }
                out.push(Token { kind: Tk::Comment, start, end: j, kw: "#", flag: false });
                i = j;
            }
            b'-' if i + 1 < n && s[i + 1] == b'-' => {
                let mut j = i + 2;
                while j < n && s[j] != b'\n' {
                    j += 1;
                }
                out.push(Token { kind: Tk::Comment, start, end: j, kw: "--", flag: false });
                i = j;
            }
            b'/' if i + 1 < n && s[i + 1] == b'*' => {
                if i + 2 < n && s[i + 2] == b'!' {
                    // MySQL executable comment: its content is code.
                    let mut j = i + 3;
                    while j < n && s[j].is_ascii_digit() {
                        j += 1;
                    }
                    out.push(Token { kind: Tk::Comment, start, end: j, kw: "/*!", flag: true });
                    in_exec_comment = true;
                    i = j;
                } else {
                    let mut j = i + 2;
                    while j + 1 < n && !(s[j] == b'*' && s[j + 1] == b'/') {
                        j += 1;
                    }
                    let end = if j + 1 < n { j + 2 } else { n };
                    out.push(Token { kind: Tk::Comment, start, end, kw: "/*", flag: false });
                    i = end;
                }
            }
            b'*' if i + 1 < n && s[i + 1] == b'/' => {
                if !in_exec_comment {
                    out.push(Token { kind: Tk::Comment, start, end: i + 2, kw: "*/", flag: false });
                }
                in_exec_comment = false;
                i += 2;
            }
            b';' => {
                out.push(Token { kind: Tk::Semi, start, end: i + 1, kw: ";", flag: false });
                i += 1;
            }
            b'(' => {
                out.push(Token { kind: Tk::LParen, start, end: i + 1, kw: "(", flag: false });
                i += 1;
            }
            b')' => {
                out.push(Token { kind: Tk::RParen, start, end: i + 1, kw: ")", flag: false });
                i += 1;
            }
            b',' => {
                out.push(Token { kind: Tk::Comma, start, end: i + 1, kw: ",", flag: false });
                i += 1;
            }
            b'.' => {
                out.push(Token { kind: Tk::Dot, start, end: i + 1, kw: ".", flag: false });
                i += 1;
            }
            b'=' | b'<' | b'>' | b'!' => {
                let two = if i + 1 < n { s[i + 1] } else { 0 };
                let (kw, len): (&'static str, usize) = match (b, two) {
                    (b'<', b'=') if i + 2 < n && s[i + 2] == b'>' => ("<=>", 3),
                    (b'<', b'=') => ("<=", 2),
                    (b'>', b'=') => (">=", 2),
                    (b'<', b'>') => ("<>", 2),
                    (b'!', b'=') => ("!=", 2),
                    (b'=', b'=') => ("==", 2),
                    (b'!', b'<') => ("!<", 2),
                    (b'!', b'>') => ("!>", 2),
                    (b'=', _) => ("=", 1),
                    (b'<', b'<') => ("<<", 2),
                    (b'>', b'>') => (">>", 2),
                    (b'<', _) => ("<", 1),
                    (b'>', _) => (">", 1),
                    _ => ("!", 1),
                };
                let kind = if kw == "!" || kw == "<<" || kw == ">>" { Tk::Op } else { Tk::Cmp };
                out.push(Token { kind, start, end: i + len, kw, flag: false });
                i += len;
            }
            b'&' if i + 1 < n && s[i + 1] == b'&' => {
                out.push(Token { kind: Tk::Logic, start, end: i + 2, kw: "&&", flag: false });
                i += 2;
            }
            b'|' if i + 1 < n && s[i + 1] == b'|' => {
                out.push(Token { kind: Tk::Logic, start, end: i + 2, kw: "||", flag: false });
                i += 2;
            }
            b':' if i + 1 < n && s[i + 1] == b':' => {
                out.push(Token { kind: Tk::Op, start, end: i + 2, kw: "::", flag: false });
                i += 2;
            }
            b'$' if i + 1 < n && s[i + 1] == b'$' => {
                // PostgreSQL dollar quoting
                let mut j = i + 2;
                while j + 1 < n && !(s[j] == b'$' && s[j + 1] == b'$') {
                    j += 1;
                }
                let closed = j + 1 < n;
                let end = if closed { j + 2 } else { n };
                out.push(Token { kind: Tk::Str, start, end, kw: "", flag: closed });
                i = end;
            }
            _ if b.is_ascii_alphabetic() || b == b'_' || b == b'$' || b >= 0x80 => {
                let mut j = i + 1;
                // (a word ends at a wide space too: `1'%A0OR%A01=1`)
                while j < n && is_word_byte(s[j]) && !(s[j] >= 0xC2 && wide_space_at(s, j)) {
                    j += 1;
                }
                let w = &s[i..j];
                // string prefixes N'..' E'..' X'..' B'..' _utf8'..'
                if j < n && s[j] == b'\'' && (w.len() == 1 && matches!(w[0] | 0x20, b'n' | b'e' | b'x' | b'b' | b'q') || (w[0] == b'_' && w.len() > 1)) {
                    let (end, closed) = scan_string(s, j + 1, b'\'');
                    out.push(Token { kind: Tk::Str, start, end, kw: "", flag: closed });
                    i = end;
                    continue;
                }
                let (mut kind, kw) = match lower_word(w, &mut buf) {
                    Some(lw) => classify(lw),
                    None => (Tk::Bare, ""),
                };
                // function call: word directly followed by '(' (or a known function
                // name followed by whitespace and '(').
                let mut k = j;
                while k < n && k < j + 8 && is_space(s[k]) {
                    k += 1;
                }
                let callable = matches!(kind, Tk::Bare | Tk::Kw)
                    || (matches!(kind, Tk::Stmt | Tk::Op) && matches!(kw, "if" | "insert" | "replace" | "binary" | "mod" | "div"));
                if k < n && s[k] == b'(' && callable {
                    let known = lower_word(w, &mut buf).map(known_function).unwrap_or(false);
                    if k == j || known {
                        kind = Tk::Func;
                    }
                }
                out.push(Token { kind, start, end: j, kw, flag: false });
                i = j;
            }
            _ => {
                // other operators: + - * / % ^ & | ~ : ? [ ] { } \ and so on
                let len = utf8_len(b).min(n - i);
                out.push(Token { kind: Tk::Op, start, end: i + len, kw: op_kw(b), flag: false });
                i += len;
            }
        }
    }
}

fn op_kw(b: u8) -> &'static str {
    match b {
        b'+' => "+",
        b'-' => "-",
        b'*' => "*",
        b'/' => "/",
        b'%' => "%",
        b'^' => "^",
        b'&' => "&",
        b'|' => "|",
        b'~' => "~",
        b':' => ":",
        b'\\' => "\\",
        _ => "?",
    }
}

fn utf8_len(b: u8) -> usize {
    match b {
        0xF0..=0xFF => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

/// Whether `src` cannot be a value that closes quote context `q` and goes on as SQL: the quote
/// is not there, or it is prose. A value placed in a MySQL identifier or a dollar quote and
/// closing it is a name or a token (`1`, `x`, `id`) before its closing quote; with white space
/// before it, the backticks are markdown code (`SELECT * FROM fills`) when a word follows the
/// first one (an alias with a space, ``Total qty`,(SELECT SLEEP(5))``, still counts), and so is
/// a first code span of words (`` `WHERE qty > 0` filter ``); `$$` at the start or after white
/// space is money slang (`Risk $$ or 1% per trade`, `$$ or 5% whichever is less`) unless SQL
/// follows it (`$$ OR 1=1--`).
fn context_absent(src: &[u8], q: u8) -> bool {
    let ws = u8::is_ascii_whitespace;
    match q {
        b'`' => {
            let Some(p) = src.iter().position(|&b| b == b'`') else { return true };
            src[..p].iter().any(ws) && src.get(p + 1).is_some_and(u8::is_ascii_alphanumeric)
                || p == 0 && src[1..].iter().position(|&b| b == b'`').is_some_and(|e| src[1..1 + e].iter().any(ws))
        }
        DOLLAR => {
            let Some(p) = src.windows(2).position(|w| w == b"$$") else { return true };
            (p == 0 || src[..p].iter().any(ws)) && !sql_in(&src[p + 2..])
        }
        _ => !src.contains(&q),
    }
}

/// Whether `rest` (what follows a `$$`) has SQL in it: punctuation a condition or a truncation
/// needs (`=`, `(`, `;`, `#`, another `$$`, `--` without words after it: `Lost $$ -- ouch` is an
/// aside) or UNION / SELECT.
fn sql_in(rest: &[u8]) -> bool {
    let lower = rest.to_ascii_lowercase();
    let truncating = rest.windows(2).position(|w| w == b"--").is_some_and(|d| {
        !rest[d + 2..].split(|b| !b.is_ascii_alphabetic()).any(|w| w.len() >= 3)
    });
    rest.iter().any(|b| matches!(b, b'=' | b'(' | b';' | b'#'))
        || truncating
        || rest.windows(2).any(|w| w == b"$$")
        || lower.windows(5).any(|w| w == b"union")
        || lower.windows(6).any(|w| w == b"select")
}

/// The quote context of a value inside a PostgreSQL dollar-quoted string (`$$...$$`): `scan`
/// and `tokenize` take it as the quote byte `$`.
pub const DOLLAR: u8 = b'$';

/// Scan a backtick-quoted identifier body from `i` (after the opening backtick; a doubled
/// backtick stands for one). Returns (end, closed).
fn scan_identifier(s: &[u8], mut i: usize) -> (usize, bool) {
    while i < s.len() {
        if s[i] == b'`' {
            if s.get(i + 1) == Some(&b'`') {
                i += 2;
                continue;
            }
            return (i + 1, true);
        }
        i += 1;
    }
    (s.len(), false)
}

/// Scan a string body from `i` (after the opening quote). Returns (end, closed).
fn scan_string(s: &[u8], mut i: usize, q: u8) -> (usize, bool) {
    let n = s.len();
    while i < n {
        let b = s[i];
        if b == b'\\' {
            i += 2;
            continue;
        }
        if b == q {
            if i + 1 < n && s[i + 1] == q {
                i += 2;
                continue;
            }
            return (i + 1, true);
        }
        i += 1;
    }
    (n, false)
}

fn scan_number(s: &[u8], mut i: usize) -> usize {
    let n = s.len();
    if i + 1 < n && s[i] == b'0' && matches!(s[i + 1], b'x' | b'X' | b'b' | b'B') {
        i += 2;
        while i < n && s[i].is_ascii_hexdigit() {
            i += 1;
        }
        return i;
    }
    while i < n && s[i].is_ascii_digit() {
        i += 1;
    }
    if i < n && s[i] == b'.' {
        i += 1;
        while i < n && s[i].is_ascii_digit() {
            i += 1;
        }
    }
    if i + 1 < n && (s[i] == b'e' || s[i] == b'E') && (s[i + 1].is_ascii_digit() || ((s[i + 1] == b'+' || s[i + 1] == b'-') && i + 2 < n && s[i + 2].is_ascii_digit())) {
        i += 2;
        while i < n && s[i].is_ascii_digit() {
            i += 1;
        }
    }
    i
}

// ---------------------------------------------------------------------------------
// Rules
// ---------------------------------------------------------------------------------

struct View<'a> {
    src: &'a [u8],
    /// significant tokens (comments removed)
    t: Vec<Token>,
    /// all tokens
    all: Vec<Token>,
}

impl<'a> View<'a> {
    fn text(&self, tok: &Token) -> &'a [u8] {
        &self.src[tok.start..tok.end.min(self.src.len())]
    }
    fn word_is(&self, i: usize, w: &str) -> bool {
        i < self.t.len() && self.text(&self.t[i]).eq_ignore_ascii_case(w.as_bytes())
    }
    fn kind(&self, i: usize) -> Option<Tk> {
        self.t.get(i).map(|t| t.kind)
    }
    fn kw(&self, i: usize) -> &'static str {
        self.t.get(i).map(|t| t.kw).unwrap_or("")
    }
    fn fingerprint(&self, from: usize) -> String {
        let st = self.t.get(from).map(|x| x.start).unwrap_or(0);
        let k = self.all.partition_point(|t| t.start < st);
        self.all[k..]
            .iter()
            .take(24)
            .map(|t| t.kind.ch())
            .collect()
    }
    fn func_name_lower(&self, i: usize) -> String {
        let mut s = String::from_utf8_lossy(self.text(&self.t[i])).to_ascii_lowercase();
        // qualified name: dbms_pipe.receive_message
        if i >= 2 && self.t[i - 1].kind == Tk::Dot && matches!(self.t[i - 2].kind, Tk::Bare | Tk::Kw) {
            let q = String::from_utf8_lossy(self.text(&self.t[i - 2])).to_ascii_lowercase();
            s = format!("{}.{}", q, s);
        }
        s
    }
}

/// Value-like token (operand).
fn is_value(k: Tk) -> bool {
    matches!(k, Tk::Num | Tk::Str | Tk::Var | Tk::Bare | Tk::Func)
}

/// Is the statement starting with keyword at index `i` well-formed enough to be SQL?
fn stmt_valid(v: &View, i: usize) -> bool {
    let w = v.kw(i);
    let nk = v.kind(i + 1);
    let nkw = v.kw(i + 1);
    let end = i + 1 >= v.t.len();
    match w {
        "select" => match nk {
            Some(Tk::Num) | Some(Tk::Str) | Some(Tk::Var) | Some(Tk::Func) | Some(Tk::LParen) => true,
            Some(Tk::Op) => nkw == "*" || nkw == "-" || nkw == "~",
            // `select all` / `select distinct` need something to select (not `"select all" didn't work`)
            Some(Tk::Kw) if matches!(nkw, "distinct" | "all") => match v.kind(i + 2) {
                Some(Tk::Num) | Some(Tk::Var) | Some(Tk::Func) | Some(Tk::LParen) | Some(Tk::Bare) => true,
                Some(Tk::Str) => v.t[i + 2].flag,
                Some(Tk::Op) => v.kw(i + 2) == "*",
                Some(Tk::Kw) => matches!(v.kw(i + 2), "null" | "case" | "true" | "false" | "user" | "on"),
                _ => false,
            },
            Some(Tk::Kw) => matches!(nkw, "null" | "top" | "case" | "true" | "false" | "user"),
            Some(Tk::Bare) => match v.kind(i + 2) {
                None | Some(Tk::Comma) | Some(Tk::Semi) | Some(Tk::Dot) | Some(Tk::RParen) => true,
                Some(Tk::Kw) => matches!(v.kw(i + 2), "from" | "into" | "as"),
                Some(Tk::Logic) => true,
                // `select strategy: momentum` is a note, not a select list
                Some(Tk::Op) => v.kw(i + 2) != ":",
                _ => false,
            },
            _ => false,
        },
        "insert" | "replace" => nkw == "into" || (nk == Some(Tk::Bare) && matches!(v.kind(i + 2), Some(Tk::LParen) | Some(Tk::Func)) ),
        "update" => nk == Some(Tk::Bare) && v.word_is(i + 2, "set"),
        "delete" => nkw == "from" || (matches!(nk, Some(Tk::Bare) | Some(Tk::Kw)) && (v.kind(i + 2).is_none() || matches!(v.kw(i + 2), "where" | "from"))),
        "drop" | "create" | "alter" | "truncate" => matches!(
            nkw,
            "table" | "database" | "view" | "procedure" | "function" | "user" | "schema" | "index" | "trigger" | "login" | "role"
        )
            // PostgreSQL's ways to code execution and data out: CREATE EXTENSION dblink or
            // plpython3u, CREATE SERVER ... postgres_fdw, CREATE EVENT TRIGGER, a language
            // (CREATE only, in the shape each takes: not `; create server ticket`, `; create
            // extension list`, `; drop subscription Bloomberg`)
            || w == "create" && create_object_statement(v, i)
            || v.word_is(i + 1, "or") && w == "create"
            // PostgreSQL: TRUNCATE name (TABLE is optional), ALTER SYSTEM SET, DROP OWNED BY
            || w == "truncate" && (v.word_is(i + 1, "only") || nk == Some(Tk::Bare) && sql_tail(v, i + 2, &["cascade", "restart", "continue"]))
            || w == "alter" && v.word_is(i + 1, "system") && matches!(v.kw(i + 2), "set") | v.word_is(i + 2, "reset")
            || w == "drop" && v.word_is(i + 1, "owned") && v.kw(i + 2) == "by",
        "exec" | "execute" => match nk {
            Some(Tk::Str) if !v.t[i + 1].flag => false,
            Some(Tk::Bare) | Some(Tk::Func) => {
                let t = v.text(&v.t[i + 1]).to_ascii_lowercase();
                t.starts_with(b"xp_") || t.starts_with(b"sp_") || t.starts_with(b"master") || t.starts_with(b"sys")
                    || matches!(v.kind(i + 2), None | Some(Tk::Str) | Some(Tk::Var) | Some(Tk::Num) | Some(Tk::Semi) | Some(Tk::Dot) | Some(Tk::LParen))
            }
            Some(Tk::LParen) | Some(Tk::Var) | Some(Tk::Str) => true,
            _ => false,
        },
        "declare" => nk == Some(Tk::Var),
        "waitfor" => nkw == "delay" || nkw == "time",
        "shutdown" => end || matches!(nk, Some(Tk::Semi) | Some(Tk::Comment)) || nkw == "with",
        "grant" | "revoke" => nk.is_some() && v.t[i + 1..].iter().take(12).any(|t| t.kw == "to" || t.kw == "on"),
        "call" => nk == Some(Tk::Func),
        // MySQL LOAD DATA / XML; PostgreSQL LOAD 'library'
        "load" => nkw == "data" || nkw == "xml" || (nk == Some(Tk::Str) && v.t[i + 1].flag && sql_tail(v, i + 2, &[])),
        "copy" => v.t[i + 1..].iter().take(8).any(|t| t.kw == "program") || (nk == Some(Tk::Bare) && matches!(v.kw(i + 2), "to" | "from") && matches!(v.kind(i + 3), Some(Tk::Str))),
        "if" => {
            // IF (cond) stmt / IF(cond, a, b) / IF EXISTS (SELECT ...)
            let j = if nkw == "exists" || nkw == "not" { i + 2 } else { i + 1 };
            if v.kind(j) != Some(Tk::LParen) || prose_after(v, j, 10) {
                return false;
            }
            let mut depth = 0;
            let mut cmp = false;
            let mut k = j;
            while k < v.t.len() && k < j + 40 {
                match v.t[k].kind {
                    Tk::LParen => depth += 1,
                    Tk::RParen => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    Tk::Cmp | Tk::Comma => cmp = true,
                    Tk::Stmt if v.t[k].kw == "select" => cmp = true,
                    _ => {}
                }
                k += 1;
            }
            cmp
        }
        "set" => {
            nk == Some(Tk::Var)
                || (nk == Some(Tk::Bare) && v.kind(i + 2) == Some(Tk::Cmp) && v.kw(i + 2) == "=")
                // PostgreSQL: SET ROLE name, SET SESSION AUTHORIZATION name
                || (nkw == "role" && matches!(v.kind(i + 2), Some(Tk::Bare) | Some(Tk::Str) | Some(Tk::Kw)))
                || (v.word_is(i + 1, "session") && v.word_is(i + 2, "authorization"))
        }
        // PostgreSQL: RESET ROLE / ALL / SESSION AUTHORIZATION
        "reset" => (matches!(nkw, "role" | "all") && sql_tail(v, i + 2, &[])) || (v.word_is(i + 1, "session") && v.word_is(i + 2, "authorization")),
        "reassign" => v.word_is(i + 1, "owned") && v.kw(i + 2) == "by",
        "vacuum" | "checkpoint" => sql_tail(v, i + 1, &[]) || v.word_is(i + 1, "full") || v.word_is(i + 1, "freeze") || (w == "vacuum" && nk == Some(Tk::LParen)),
        "cluster" | "reindex" => sql_tail(v, i + 1, &[]) || (nk == Some(Tk::Bare) && sql_tail(v, i + 2, &["using"])) || matches!(nkw, "table" | "index" | "database" | "schema"),
        "discard" => (nkw == "all" || v.word_is(i + 1, "plans") || v.word_is(i + 1, "temp") || v.word_is(i + 1, "sequences")) && sql_tail(v, i + 2, &[]),
        "import" => v.word_is(i + 1, "foreign") && v.word_is(i + 2, "schema"),
        "show" => matches!(nkw, "tables" | "databases" | "grants" | "variables" | "columns"),
        "use" => nk == Some(Tk::Bare) && (matches!(v.kind(i + 2), None | Some(Tk::Semi)) || (v.kind(i + 2) == Some(Tk::Stmt) && stmt_valid(v, i + 2))),
        "begin" => end || matches!(nk, Some(Tk::Semi)) || nkw == "declare",
        // PostgreSQL's anonymous code block: `DO $$ ... $$`
        "do" if nk == Some(Tk::Str) => v.t[i + 1].flag && v.src.get(v.t[i + 1].start) == Some(&b'$'),
        "kill" | "backup" | "restore" | "dbcc" | "rename" | "merge" | "handler" | "prepare" | "deallocate" | "pragma" | "attach" | "do" | "open" | "fetch" => {
            matches!(nk, Some(Tk::Num) | Some(Tk::Func) | Some(Tk::Var) | Some(Tk::LParen)) || matches!(nkw, "database" | "table" | "into")
                // PostgreSQL: PREPARE name AS statement
                || (w == "prepare" && nk == Some(Tk::Bare) && v.kw(i + 2) == "as" && v.kind(i + 3) == Some(Tk::Stmt))
        }
        _ => false,
    }
}

/// A statement that starts at `i` with a keyword the statement list leaves out (`TABLE users`,
/// `LOCK TABLE t`, `ROLLBACK`, `SHOW ALL`, `FLUSH PRIVILEGES`, `SET GLOBAL x='ON'`) and runs to a
/// comment that ends the value, the rest of the query cut off: `'; TABLE users;--` after a
/// breakout. A few tokens only, ended by `;`, the comment without words or initials.
fn statement_to_comment(v: &View, i: usize) -> bool {
    const WORDS: &[&str] = &[
        "table", "values", "with", "lock", "unlock", "rollback", "commit", "savepoint", "release", "abort", "refresh", "show",
        "flush", "pragma", "detach", "declare", "bulk", "handler", "set", "listen", "notify", "explain", "analyze", "move",
        "close", "comment", "security", "start", "describe", "desc", "optimize", "repair", "purge", "install", "uninstall",
    ];
    // (ended by its own `;` before a comment of no words: not `'; show chart tomorrow -- JB`)
    let n = v.t.len();
    i < n
        && n - i <= 16
        && v.kind(n - 1) == Some(Tk::Semi)
        && n - 1 > i
        && (v.kind(i) == Some(Tk::Stmt) || WORDS.iter().any(|w| v.word_is(i, w)))
        && v.all.last().is_some_and(|t| t.kind == Tk::Comment && truncating_comment(v, t) && !prose_comment(v, t) && !v.text(t).iter().any(u8::is_ascii_uppercase))
}

/// After a breakout and `;`, a whole short statement that reads or locks a table or shows the
/// settings, with nothing after it but `;`: `'; TABLE users`, `'; LOCK TABLE orders`, `'; SHOW ALL`.
fn short_utility_statement(v: &View, i: usize) -> bool {
    let end = |k: usize| matches!(v.kind(k), None | Some(Tk::Semi)) && v.kind(k + 1).is_none();
    let name = |k: usize| v.kind(k) == Some(Tk::Bare) && (end(k + 1) || v.kind(k + 1) == Some(Tk::Dot) && v.kind(k + 2) == Some(Tk::Bare) && end(k + 3));
    (v.kw(i) == "table" && name(i + 1)) || (v.kw(i) == "lock" && v.kw(i + 1) == "table" && name(i + 2)) || (v.word_is(i, "show") && v.kw(i + 1) == "all" && end(i + 2))
}

/// `WITH name AS ( DELETE|UPDATE|INSERT|SELECT ...`: a statement that starts with a common table
/// expression (`'; WITH d AS (DELETE FROM orders RETURNING *) SELECT 1`).
fn with_statement(v: &View, i: usize) -> bool {
    if v.kw(i) != "with" {
        return false;
    }
    let mut k = i + 1;
    if v.word_is(k, "recursive") {
        k += 1;
    }
    // the name (`d`, `"d"`), its column list if any (`d(x, y)`)
    if !matches!(v.kind(k), Some(Tk::Bare) | Some(Tk::Func) | Some(Tk::Str)) {
        return false;
    }
    k += 1;
    if v.kind(k) == Some(Tk::LParen) {
        while k < v.t.len() && v.kind(k) != Some(Tk::RParen) && k < i + 40 {
            k += 1;
        }
        k += 1;
    }
    if v.kw(k) != "as" {
        return false;
    }
    k += 1;
    // `AS [NOT] MATERIALIZED (`
    if v.kw(k) == "not" {
        k += 1;
    }
    if v.word_is(k, "materialized") {
        k += 1;
    }
    v.kind(k) == Some(Tk::LParen) && matches!(v.kw(k + 1), "select" | "insert" | "update" | "delete") && stmt_valid(v, k + 1)
}

/// Whether the statement ends at token `i`: nothing more, `;`, a comment, or one of `words`
/// (what may follow a bare table name: `TRUNCATE t CASCADE`).
/// CREATE EXTENSION / SERVER / LANGUAGE / SUBSCRIPTION / TABLESPACE / EVENT TRIGGER at `i`, in
/// the shape each takes: PostgreSQL's ways to run code and to send data out (`'; CREATE
/// EXTENSION dblink;--`, `CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw ...`).
fn create_object_statement(v: &View, i: usize) -> bool {
    let name = |k: usize| matches!(v.kind(k), Some(Tk::Bare) | Some(Tk::Func) | Some(Tk::Str));
    let name_text = |k: usize| if k < v.t.len() { String::from_utf8_lossy(v.text(&v.t[k])).to_ascii_lowercase() } else { String::new() };
    if v.word_is(i + 1, "event") && v.word_is(i + 2, "trigger") {
        return name(i + 3) && v.word_is(i + 4, "on");
    }
    let k = i + 2;
    if v.word_is(i + 1, "extension") {
        // a name that is one (`dblink`, `postgres_fdw`, `plpython3u`), or the statement's next word
        let n = name_text(k);
        let named = n.starts_with("pl") || n.contains(['_', '3']) || matches!(n.as_str(), "dblink" | "adminpack" | "lo");
        return v.word_is(k, "if") || name(k) && (named && sql_tail(v, k + 1, &[]) || sql_tail(v, k + 1, &["schema", "version", "cascade", "with"]) && !sql_tail(v, k + 1, &[]));
    }
    let (what, next) = match () {
        _ if v.word_is(i + 1, "server") => ("server", "foreign"),
        _ if v.word_is(i + 1, "subscription") => ("subscription", "connection"),
        _ if v.word_is(i + 1, "tablespace") => ("tablespace", "location"),
        _ if v.word_is(i + 1, "language") => ("language", "handler"),
        _ => return false,
    };
    name(k) && (v.word_is(k + 1, next) || what == "language" && name_text(k).starts_with("pl") && sql_tail(v, k + 1, &[]))
}

fn sql_tail(v: &View, i: usize, words: &[&str]) -> bool {
    match v.kind(i) {
        None | Some(Tk::Semi) | Some(Tk::Comment) => true,
        _ => words.iter().any(|w| v.word_is(i, w)),
    }
}

/// PostgreSQL statements that are also a word and a noun of a note (`truncate position`,
/// `reset all alerts`): after a `;` that follows prose they are not taken as stacked SQL.
fn weak_pg_statement(v: &View, i: usize) -> bool {
    match v.kw(i) {
        "truncate" => !matches!(v.kw(i + 1), "table") && !v.word_is(i + 1, "only"),
        "reset" | "discard" | "vacuum" | "cluster" | "checkpoint" | "reindex" => true,
        _ => false,
    }
}

/// Parse a simple operand at `i`: optional '(' ... value ... optional ')'.
/// Returns (canonical text bytes range, next index).
fn simple_operand(v: &View, mut i: usize) -> Option<(usize, usize)> {
    let mut opens = 0;
    while v.kind(i) == Some(Tk::LParen) && opens < 4 {
        i += 1;
        opens += 1;
    }
    // unary minus
    if v.kind(i) == Some(Tk::Op) && matches!(v.kw(i), "-" | "+") && v.kind(i + 1) == Some(Tk::Num) {
        i += 1;
    }
    let k = v.kind(i)?;
    let literal = k == Tk::Kw && matches!(v.kw(i), "null" | "true" | "false");
    if !(literal || matches!(k, Tk::Num | Tk::Str | Tk::Bare | Tk::Var)) {
        return None;
    }
    let idx = i;
    i += 1;
    while opens > 0 && v.kind(i) == Some(Tk::RParen) {
        i += 1;
        opens -= 1;
    }
    Some((idx, i))
}

fn operand_value<'b>(v: &View<'b>, i: usize) -> Vec<u8> {
    let t = &v.t[i];
    let mut b = v.text(t).to_ascii_lowercase();
    if t.kind == Tk::Str && !b.is_empty() {
        // strip quotes (the first string of a quoted view has no opening quote)
        if matches!(b[0], b'\'' | b'"') {
            b.remove(0);
        }
        if t.flag && !b.is_empty() && matches!(b[b.len() - 1], b'\'' | b'"') {
            b.pop();
        }
    }
    if t.kind == Tk::Num {
        // 1.0 == 1
        if let Ok(s) = std::str::from_utf8(&b) {
            if let Ok(f) = s.parse::<f64>() {
                return format!("{}", f).into_bytes();
            }
        }
    }
    b
}

/// Tautology-like comparison starting at `i` (`1=1`, `'a'='a'`, `x=x`, `2<>3`).
/// Returns the index after it.
fn tautology_at(v: &View, i: usize) -> Option<usize> {
    let (a, j) = simple_operand(v, i)?;
    if v.kind(j) != Some(Tk::Cmp) {
        return None;
    }
    let op = v.kw(j);
    // "sounds like" and "not like"
    let mut k = j + 1;
    if op == "sounds" && v.kw(k) == "like" {
        k += 1;
    }
    let (b, after) = simple_operand(v, k)?;
    let va = operand_value(v, a);
    let vb = operand_value(v, b);
    let ka = v.t[a].kind;
    let kb = v.t[b].kind;
    let eq = va == vb;
    let ok = match op {
        "=" | "==" | "<=>" | "like" | "sounds" | "rlike" | "regexp" | "is" | ">=" | "<=" | "glob" => eq,
        "<>" | "!=" => !eq && ka == Tk::Num && kb == Tk::Num,
        _ => false,
    };
    if ok {
        Some(after)
    } else {
        None
    }
}

/// Does the region after a logic operator at `i` look like SQL (operand)?
fn logic_operand_ok(v: &View, i: usize) -> bool {
    let mut j = i;
    while v.kind(j) == Some(Tk::LParen) || (v.kind(j) == Some(Tk::Op) && matches!(v.kw(j), "not" | "!" | "-" | "+" | "~")) {
        j += 1;
    }
    match v.kind(j) {
        Some(Tk::Num) | Some(Tk::Str) | Some(Tk::Var) | Some(Tk::Func) => true,
        Some(Tk::Kw) => matches!(v.kw(j), "true" | "false" | "null" | "exists" | "case"),
        Some(Tk::Stmt) => v.kw(j) == "select",
        Some(Tk::Bare) => {
            matches!(v.kind(j + 1), Some(Tk::Cmp) | Some(Tk::Logic) | Some(Tk::RParen) | Some(Tk::Semi) | Some(Tk::Dot))
                // `' AND password ~ '^a'--`: PostgreSQL's regular-expression match, a blind probe
                // of a column one character at a time
                || v.kind(j + 1) == Some(Tk::Op) && v.kw(j + 1) == "~" && v.kind(j + 2) == Some(Tk::Str)
        }
        _ => false,
    }
}

/// After a breakout and AND/OR: operand followed by something that makes it SQL
/// (`' or 1=1`, `' or 1--`, `' or sleep(5)`, `' or 1`), not prose (`16" or 18"`).
fn breakout_logic_ok(v: &View, i: usize) -> bool {
    if !logic_operand_ok(v, i) {
        return false;
    }
    let mut j = i;
    while v.kind(j) == Some(Tk::LParen) || (v.kind(j) == Some(Tk::Op) && matches!(v.kw(j), "not" | "!" | "-" | "+" | "~")) {
        j += 1;
    }
    let opk = v.kind(j);
    if matches!(opk, Some(Tk::Func) | Some(Tk::Stmt) | Some(Tk::LParen)) || j > i {
        return true;
    }
    // skip a qualified name
    let mut k = j + 1;
    while v.kind(k) == Some(Tk::Dot) {
        k += 2;
    }
    if v.kind(k - 1) == Some(Tk::Func) {
        return true;
    }
    match v.kind(k) {
        None => matches!(opk, Some(Tk::Num) | Some(Tk::Var)) || v.kw(j) == "true",
        Some(Tk::Cmp) | Some(Tk::Logic) | Some(Tk::RParen) | Some(Tk::Semi) | Some(Tk::Op) => true,
        // `' AND 0 ORDER BY 3-- -`: the column-count probe after a false condition
        Some(Tk::Kw) if matches!(v.kw(k), "order" | "group") && v.kw(k + 1) == "by" && v.kind(k + 2) == Some(Tk::Num) => true,
        _ => {
            // comment right after the operand
            let end = v.t[j].end;
            v.all.iter().any(|t| t.kind == Tk::Comment && t.start >= end && v.t.get(k).map(|x| x.start > t.start).unwrap_or(true))
        }
    }
}

/// A comment that plausibly truncates a query: `--` or `#` followed by nothing,
/// whitespace or punctuation (not `--INFANT`, `#2 MOM`), or any `/*`.
fn truncating_comment(v: &View, t: &Token) -> bool {
    let body = &v.src[t.start..t.end.min(v.src.len())];
    match t.kw {
        "--" => body.len() == 2 || !body[2].is_ascii_alphanumeric(),
        "#" => body[1..].iter().all(|b| b.is_ascii_whitespace() || !b.is_ascii_alphanumeric()),
        _ => true,
    }
}

/// A truncating comment with no letter in it (`-- -`, `#`, `--+`): a probe's, not an aside.
fn wordless_comment(v: &View, t: &Token) -> bool {
    t.kind == Tk::Comment && truncating_comment(v, t) && !v.text(t).iter().any(u8::is_ascii_alphabetic)
}

/// Constant condition after a logic operator: `AND 8=3`, `AND 1+2=3+4`, `AND (8)=(3)`,
/// `AND 31337-31337=0` (arithmetic/boolean blind probes).
fn is_magic(kw: &str) -> bool {
    matches!(kw, "current_user" | "session_user" | "system_user" | "current_date" | "current_time" | "current_timestamp" | "utc_date" | "utc_time" | "localtimestamp" | "current_role")
}

/// Whether the tokens before `i` are one number, with an optional sign (`1`, `-1`): the value
/// breaks out of a numeric context right away.
fn lone_number_before(v: &View, i: usize) -> bool {
    match i {
        1 => v.kind(0) == Some(Tk::Num),
        2 => v.kind(0) == Some(Tk::Op) && matches!(v.kw(0), "-" | "+") && v.kind(1) == Some(Tk::Num),
        _ => false,
    }
}

/// `ordered`: comparisons with `<`, `>`, `<=`, `>=` count too (only right after a lone number:
/// `-1 AND 1>1`, a boolean-blind probe, where a note reads `5 > 3 and 2 < 4`).
fn constant_condition(v: &View, i: usize, ordered: bool) -> bool {
    let mut j = i;
    let mut cmp = 0;
    let mut nums = 0;
    let mut toks = 0;
    while j < v.t.len() && toks < 12 {
        match v.t[j].kind {
            Tk::Num | Tk::Str => nums += 1,
            Tk::Kw if is_magic(v.t[j].kw) => nums += 1,
            Tk::LParen | Tk::RParen => {}
            Tk::Op if v.t[j].kw == "not" => {}
            Tk::Cmp if matches!(v.t[j].kw, "like" | "sounds" | "rlike" | "regexp") => {
                if !(v.t[j].kw == "like" && j > 0 && v.t[j - 1].kw == "sounds") {
                    cmp += 1;
                }
            }
            Tk::Op if matches!(v.t[j].kw, "+" | "-" | "*" | "/" | "%") => {}
            Tk::Cmp if matches!(v.t[j].kw, "=" | "<>" | "!=" | "==" | "<=>") => cmp += 1,
            Tk::Cmp if ordered && matches!(v.t[j].kw, ">" | "<" | ">=" | "<=") => cmp += 1,
            Tk::Logic | Tk::Semi => break,
            _ => return false,
        }
        j += 1;
        toks += 1;
    }
    let at_end = j >= v.t.len() || matches!(v.t[j].kind, Tk::Logic | Tk::Semi);
    at_end && cmp == 1 && nums >= 2
}

/// Whole stream is an SQL expression (no barewords) closed by a trailing comment:
/// ` ( COS ( 1 OR 'b') )  --`, `1*1--`, `(1 AND 1) OR 2>1--`.
/// A comment in words (two of three letters or more, written in lower case or capitalised): a
/// note's aside, where a payload's comment is empty or one token (`-- -`, `-- kRtO`, `-- pwnd`).
fn prose_comment(v: &View, t: &Token) -> bool {
    // (words as text writes them, lower case or capitalised: not sqlmap's `kRtO`)
    let words: Vec<&[u8]> = v
        .text(t)
        .split(|b| !b.is_ascii_alphabetic())
        .filter(|w| w.len() >= 3 && w[1..].iter().all(u8::is_ascii_lowercase))
        .collect();
    words.len() >= 2
}

fn expression_comment(v: &View, quoted: bool) -> bool {
    let last = match v.all.last() {
        Some(t) if t.kind == Tk::Comment => *t,
        _ => return false,
    };
    if !truncating_comment(v, &last) {
        return false;
    }
    let start = if quoted { 1 } else { 0 };
    let body = &v.t[start.min(v.t.len())..];
    let cbody = &v.src[last.start..last.end.min(v.src.len())];
    let empty_comment = cbody.iter().skip(if last.kw == "#" { 1 } else { 2 }).all(|b| b.is_ascii_whitespace() || *b == b'-' || *b == b'+');
    if body.is_empty() || (body.len() < 2 && !(empty_comment || body[0].kind == Tk::Var)) {
        return false;
    }
    // `'AAPL' or 'MSFT' -- pick one`: an aside after plain values and logic; with a function,
    // variable or SELECT in the expression it still counts.
    if prose_comment(v, &last) && !body.iter().any(|t| matches!(t.kind, Tk::Func | Tk::Var | Tk::Stmt)) {
        return false;
    }
    // A variable is `@@name` or `@` and a letter (`@2ITpthv#` is a random password); a
    // function one SQL knows (`QK8jEef(#@` is not a call).
    let var_ok = |t: &Token| {
        let b = v.text(t);
        b.starts_with(b"@@") || b.get(1).is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_')
    };
    let func_ok = |t: &Token| known_function(&String::from_utf8_lossy(v.text(t)).to_ascii_lowercase());
    if body.iter().any(|t| t.kind == Tk::Var && !var_ok(t)) {
        return false;
    }
    let funcs = body.iter().filter(|t| t.kind == Tk::Func);
    if funcs.clone().next().is_some() && !funcs.clone().any(func_ok) && !body.iter().any(|t| matches!(t.kind, Tk::Logic | Tk::Var)) {
        return false;
    }
    let mut structural = empty_comment || body.iter().any(|t| t.kind == Tk::Var);
    for t in body {
        match t.kind {
            Tk::Bare | Tk::Stmt | Tk::Dot | Tk::Semi | Tk::Union => {
                if t.kind == Tk::Stmt && t.kw == "select" {
                    structural = true;
                    continue;
                }
                return false;
            }
            Tk::Kw if !matches!(t.kw, "null" | "true" | "false") => return false,
            Tk::LParen | Tk::Logic | Tk::Func | Tk::Var => structural = true,
            Tk::Op if t.kw == "?" || t.kw == "\\" || t.kw == ":" => return false,
            _ => {}
        }
    }
    structural
}

fn dangerous_function(name: &str) -> Option<(&'static str, u8)> {
    let base = name.rsplit('.').next().unwrap_or(name);
    let r = match base {
        "sleep" | "pg_sleep" | "pg_sleep_for" | "pg_sleep_until" | "benchmark" | "receive_message" | "randomblob" => ("sqli.time_delay", 95),
        "load_file" | "xp_cmdshell" | "sys_eval" | "sys_exec" | "pg_read_file" | "pg_read_binary_file" | "pg_ls_dir" | "lo_import" | "lo_export" | "xp_dirtree"
        | "xp_fileexist" | "xp_regread" | "sp_oacreate" | "sp_executesql" | "dblink_connect" | "openrowset" | "opendatasource" => ("sqli.dangerous_function", 90),
        "extractvalue" | "updatexml" | "name_const" | "gtid_subset" | "exp" | "get_host_address" | "get_host_name" | "request" | "dbms_xmlgen" | "getmappingxpath"
        | "ctxsys" | "sys_context" => ("sqli.error_based", 75),
        _ => return None,
    };
    // qualified names restricted
    if base == "request" && !name.contains("utl_http") {
        return None;
    }
    if base == "exp" {
        return None;
    }
    if base == "receive_message" && !name.contains("dbms_pipe") {
        return None;
    }
    Some(r)
}

fn is_catalog(w: &[u8]) -> bool {
    let l = w.to_ascii_lowercase();
    matches!(
        &l[..],
        b"information_schema" | b"sysobjects" | b"syscolumns" | b"sysdatabases" | b"sysusers" | b"pg_catalog" | b"pg_shadow" | b"pg_user"
            | b"pg_database" | b"pg_tables" | b"all_tables" | b"user_tables" | b"all_tab_columns" | b"dba_users" | b"all_users"
            | b"sqlite_master" | b"msysobjects" | b"msysaccessobjects" | b"mysql.user" | b"dba_role_privs" | b"user_objects"
            | b"sys.all_users" | b"v$version" | b"user$" | b"global_name"
    )
}

/// Is the stream after index `i` prose (consecutive non-keyword words)?
fn prose_after(v: &View, i: usize, window: usize) -> bool {
    let mut prev_bare = false;
    for t in v.t.iter().skip(i).take(window) {
        let b = t.kind == Tk::Bare;
        if b && prev_bare {
            return true;
        }
        prev_bare = b;
    }
    false
}

fn hit(v: &View, rule: &'static str, weight: u8, i: usize, class: Class) -> Hit {
    let st = v.t.get(i).map(|t| t.start).unwrap_or(0);
    let en = v.t.iter().skip(i).take(8).next_back().map(|t| t.end).unwrap_or(st);
    Hit { class, rule_id: rule, weight, offset: st, length: en.saturating_sub(st).min(64), detail: format!("fp={}", v.fingerprint(i)) }
}

/// Analyze one view; push hits.
fn analyze(v: &View, quoted: bool, out: &mut Vec<Hit>) {
    let n = v.t.len();
    let c = Class::Sqli;
    let found = |h: Hit, out: &mut Vec<Hit>| {
        if !out.iter().any(|o| o.rule_id == h.rule_id) {
            out.push(h);
        }
    };

    // A number (or NULL, or one word) that closes the parenthesis it was placed in and goes on
    // with a condition clause (`-5977) WHERE 3096=5125 OR ...`): the unquoted form of the clause
    // breakout.
    if !quoted {
        let mut k = usize::from(v.kind(0) == Some(Tk::Op) && matches!(v.text(&v.t[0]), b"-" | b"+"));
        let operand = matches!(v.kind(k), Some(Tk::Num) | Some(Tk::Bare)) || v.kw(k) == "null";
        if operand && v.kind(k + 1) == Some(Tk::RParen) {
            k += 1;
            while v.kind(k) == Some(Tk::RParen) {
                k += 1;
            }
            // (a constant condition after it, as sqlmap writes it, `3096=5125`, or a value ended
            // by a truncating comment, `-1) WHERE username='admin'-- -`: not `1) where RSI > 70
            // sell`, `2) where 50 > RSI, buy`)
            let value = |i: usize| matches!(v.kind(i), Some(Tk::Num) | Some(Tk::Str));
            let constant = value(k + 1) && v.kind(k + 2) == Some(Tk::Cmp) && (value(k + 3) || matches!(v.kind(k + 3), Some(Tk::LParen) | Some(Tk::Func)))
                || matches!(v.kind(k + 1), Some(Tk::LParen) | Some(Tk::Func))
                || v.all.last().is_some_and(|t| t.kind == Tk::Comment && truncating_comment(v, t) && !prose_comment(v, t));
            if matches!(v.kw(k), "where" | "having") && constant && breakout_logic_ok(v, k + 1) {
                found(hit(v, "sqli.breakout_clause", 85, 0, c), out);
            }
        }
    }

    // Breakout rules (quoted views): the first token is the closed string.
    if quoted && n > 0 && v.t[0].kind == Tk::Str && v.t[0].flag {
        // comment right after the quote (in the unfiltered stream)
        let mut ai = 1;
        while ai < v.all.len() && v.all[ai].kind == Tk::RParen {
            ai += 1;
        }
        if ai < v.all.len() && v.all[ai].kind == Tk::Comment && !v.all[ai].flag && truncating_comment(v, &v.all[ai]) {
            let t = v.all[ai];
            found(
                Hit { class: c, rule_id: "sqli.breakout_comment", weight: 80, offset: v.t[0].end.saturating_sub(1), length: (t.end - v.t[0].end + 1).min(64), detail: format!("fp={}", v.fingerprint(0)) },
                out,
            );
        }
        let mut k = 1;
        let mut parens = 0;
        while v.kind(k) == Some(Tk::RParen) {
            k += 1;
            parens += 1;
        }
        match v.kind(k) {
            Some(Tk::Logic) if breakout_logic_ok(v, k + 1) => {
                found(hit(v, "sqli.breakout_logic", 90, 0, c), out);
            }
            Some(Tk::Semi) => {
                if k + 1 < n && v.kind(k + 1) == Some(Tk::Stmt) && stmt_valid(v, k + 1) {
                    found(hit(v, "sqli.breakout_stacked", 85, 0, c), out);
                }
                if v.kind(k + 1).is_none() && v.all.last().map(|t| t.kind == Tk::Comment && truncating_comment(v, t)).unwrap_or(false) {
                    found(hit(v, "sqli.breakout_stacked", 85, 0, c), out);
                }
                if statement_to_comment(v, k + 1) || short_utility_statement(v, k + 1) {
                    found(hit(v, "sqli.breakout_stacked", 85, 0, c), out);
                }
            }
            Some(Tk::Op) | Some(Tk::Cmp) => {
                let opk = v.kw(k);
                let mut j = k + 1;
                if matches!(opk, "not" | "is" | "in" | "like" | "between" | "rlike" | "regexp") {
                    while v.kind(j) == Some(Tk::Op) && v.kw(j) == "not" {
                        j += 1;
                    }
                }
                let next = v.kind(j);
                let word_op = opk.as_bytes().first().map(|b| b.is_ascii_alphabetic()).unwrap_or(false);
                let sym_str_ok = matches!(opk, "=" | "+" | "-" | "<>" | "!=" | "<" | ">" | "<=" | ">=" | "==" | "<=>");
                let num_then = next == Some(Tk::Num)
                    && !word_op
                    && (matches!(v.kind(j + 1), Some(Tk::Logic) | Some(Tk::Cmp))
                        || v.all.last().map(|t| t.kind == Tk::Comment && t.start >= v.t[j].end && truncating_comment(v, t)).unwrap_or(false) && j + 1 == n);
                let strong = matches!(next, Some(Tk::Func) | Some(Tk::LParen) | Some(Tk::Var))
                    || (next == Some(Tk::Stmt) && v.kw(j) == "select")
                    || (next == Some(Tk::Str) && sym_str_ok && v.src.get(v.t[j].start) == v.src.get(v.t[0].end - 1)
                        // (an operator quoted in prose, `a '+' in the version (as ...`: the
                        // string after it runs on unclosed through three words or more)
                        && (v.t[j].flag || v.text(&v.t[j]).split(|b| b.is_ascii_whitespace()).filter(|w| w.len() >= 2 && w.iter().all(u8::is_ascii_alphabetic)).count() < 3))
                    || (next == Some(Tk::Kw) && matches!(v.kw(j), "null" | "true" | "false") && !word_op)
                    || num_then;
                let bad_op = matches!(opk, "?" | "\\" | ":" | "*" | "&" | "|" | "^" | "~" | "%" | "/");
                if strong && (!bad_op || matches!(next, Some(Tk::Func) | Some(Tk::LParen) | Some(Tk::Stmt))) {
                    found(hit(v, "sqli.breakout_operator", 75, 0, c), out);
                }
            }
            Some(Tk::Kw) => {
                let w = v.kw(k);
                let ok = match w {
                    "order" | "group" => v.kw(k + 1) == "by",
                    "having" => logic_operand_ok(v, k + 1),
                    // `') WHERE 3289=8327 HAVING ...`: sqlmap's boundary for a value inside a
                    // parenthesised condition.
                    "where" => breakout_logic_ok(v, k + 1),
                    "into" => matches!(v.kw(k + 1), "outfile" | "dumpfile") || v.kind(k + 1) == Some(Tk::Var),
                    // `' limit 1 --`, `' limit 1,1 ...`: not `"limit 10, not 100"`
                    "limit" => v.kind(k + 1) == Some(Tk::Num) && match v.kind(k + 2) {
                        Some(Tk::Comma) => v.kind(k + 3) == Some(Tk::Num),
                        Some(Tk::Bare) | Some(Tk::Logic) | Some(Tk::Cmp) => false,
                        _ => true,
                    },
                    "procedure" => v.kind(k + 1) == Some(Tk::Func),
                    "for" => v.word_is(k + 1, "update") || v.word_is(k + 1, "xml"),
                    _ => false,
                };
                if ok {
                    found(hit(v, "sqli.breakout_clause", 85, 0, c), out);
                }
            }
            Some(Tk::Stmt) if stmt_valid(v, k) && v.kw(k) != "set" && v.kw(k) != "use" => {
                found(hit(v, "sqli.breakout_statement", 85, 0, c), out);
            }
            Some(Tk::Comma) if parens > 0 || v.kind(k + 1).map(is_value).unwrap_or(false) || v.kw(k + 1) == "null" => {
                // "',NULL,NULL) waitfor ..." : value list breakout; flagged only with more SQL after it
                let more = v.t[k..].iter().take(64).any(|t| matches!(t.kind, Tk::Stmt | Tk::Union | Tk::Func) || t.kw == "null");
                let tail_comment = v.all.last().map(|t| t.kind == Tk::Comment).unwrap_or(false);
                if more && (tail_comment || parens > 0) {
                    found(hit(v, "sqli.breakout_value_list", 70, 0, c), out);
                }
            }
            _ => {}
        }
    }

    for i in 0..n {
        let t = v.t[i];
        match t.kind {
            Tk::Union => {
                let mut j = i + 1;
                // (MySQL's DISTINCTROW is DISTINCT: `UNION DISTINCTROW SELECT`)
                while matches!(v.kw(j), "all" | "distinct") || v.word_is(j, "distinctrow") || v.kind(j) == Some(Tk::LParen) {
                    j += 1;
                }
                if v.kw(j) == "select" {
                    found(hit(v, "sqli.union_select", 95, i, c), out);
                } else if i > 0
                    && (matches!(v.kind(i - 1), Some(Tk::Num) | Some(Tk::RParen)) || (v.kind(i - 1) == Some(Tk::Str) && matches!(v.kind(i + 1), Some(Tk::Num) | Some(Tk::Comma))))
                    && matches!(v.kind(i + 1), None | Some(Tk::Num) | Some(Tk::Comma) | Some(Tk::Str) | Some(Tk::Kw) | Some(Tk::Op))
                {
                    found(hit(v, "sqli.union_probe", 70, i, c), out);
                }
            }
            Tk::Semi => {
                // `drop the laggards; select winners`: prose, then `select` and one word
                // (and `scaled in; truncate position`: words that are PostgreSQL statements)
                let after_prose = i > 0
                    && (v.kind(i - 1) == Some(Tk::Bare)
                        || matches!(v.kind(i - 1), Some(Tk::Kw) | Some(Tk::Cmp)) && v.text(&v.t[i - 1]).iter().all(|b| b.is_ascii_alphabetic()));
                let prose_select = after_prose
                    && ((v.kw(i + 1) == "select" && v.kind(i + 2) == Some(Tk::Bare) && v.kind(i + 3).is_none()) || weak_pg_statement(v, i + 1));
                // `'; desc users; --`: MySQL's DESCRIBE of one table, ended by `;` or the value
                let describe = (v.word_is(i + 1, "desc") || v.word_is(i + 1, "describe"))
                    && v.kind(i + 2) == Some(Tk::Bare)
                    && matches!(v.kind(i + 3), None | Some(Tk::Semi))
                    && v.kind(i.wrapping_sub(1)) == Some(Tk::Str);
                // `1; TABLE users;--`: a value that is a number (or a closed string, a parenthesis) then a statement
                // of any keyword up to a comment that ends the value
                let to_comment = (i == 1 && v.kind(0) == Some(Tk::Num) || i > 0 && matches!(v.kind(i - 1), Some(Tk::Str) | Some(Tk::RParen))) && statement_to_comment(v, i + 1);
                if !prose_select && ((v.kind(i + 1) == Some(Tk::Stmt) && stmt_valid(v, i + 1)) || (v.kind(i + 1) == Some(Tk::Func) && v.kw(i + 1) == "if") || describe || with_statement(v, i + 1) || to_comment) {
                    found(hit(v, "sqli.stacked_query", 90, i, c), out);
                }
            }
            Tk::Func => {
                let name = v.func_name_lower(i);
                if v.kind(i + 1) == Some(Tk::LParen) && v.kind(i + 2) == Some(Tk::RParen)
                    && matches!(name.as_str(), "version" | "database" | "user" | "current_user" | "system_user" | "session_user" | "db_name" | "schema"
                        | "current_database" | "current_schema" | "sqlite_version" | "connection_id" | "user_name" | "suser_name" | "host_name" | "suser_sname")
                {
                    found(hit(v, "sqli.info_function", 60, i, c), out);
                }
                if matches!(name.as_str(), "iif" | "if" | "elt" | "make_set" | "nullif" | "decode")
                    && v.kind(i + 1) == Some(Tk::LParen)
                    && v.kind(i + 2) == Some(Tk::Num)
                    && v.kind(i + 3) == Some(Tk::Cmp)
                    && v.kind(i + 4) == Some(Tk::Num)
                {
                    found(hit(v, "sqli.conditional_probe", 70, i, c), out);
                }
                // `sleep(...)` and `benchmark(...)` are also words of notes and pseudo-code
                // (`while not filled: sleep(0.5)`): they count after SQL, not after a word or ':'.
                // Nor with a duration in words (`sleep(8h) before the open`): a number directly
                // followed by a word is not an SQL argument.
                let generic = matches!(name.as_str(), "sleep" | "benchmark")
                    && (i > 0 && (v.kind(i - 1) == Some(Tk::Bare) || (v.kind(i - 1) == Some(Tk::Op) && v.kw(i - 1) == ":"))
                        || v.kind(i + 2) == Some(Tk::Num) && v.kind(i + 3) == Some(Tk::Bare))
                    // (`Benchmark(SPY)`: MySQL's takes a count and an expression)
                    || name == "benchmark" && v.kind(i + 2) == Some(Tk::Bare) && v.kind(i + 3) == Some(Tk::RParen);
                if let Some((rule, w)) = dangerous_function(&name).filter(|_| !generic) {
                    found(hit(v, rule, w, i, c), out);
                } else if (name.starts_with("dbms_") || name.starts_with("utl_") || name.starts_with("sys.dbms_")) && name.contains('.') {
                    found(hit(v, "sqli.dangerous_function", 80, i, c), out);
                }
            }
            Tk::Bare => {
                let w = v.text(&t);
                if w.eq_ignore_ascii_case(b"xp_cmdshell") || w.eq_ignore_ascii_case(b"sp_oacreate") || w.eq_ignore_ascii_case(b"sp_configure") {
                    found(hit(v, "sqli.dangerous_function", 90, i, c), out);
                } else if is_catalog(w) && (w.iter().any(|b| matches!(b, b'_' | b'$' | b'.')) || {
                    // A catalog named by a plain word (`sysusers`, also systemd's tool) counts
                    // where SQL names a table: after FROM/JOIN, or qualified.
                    i > 0 && (matches!(v.kw(i - 1), "from" | "join") || v.kind(i - 1) == Some(Tk::Dot)) || v.kind(i + 1) == Some(Tk::Dot)
                }) {
                    found(hit(v, "sqli.system_catalog", 60, i, c), out);
                }
            }
            Tk::Stmt => {
                let w = t.kw;
                // value directly followed by a statement (MSSQL stacking without ';')
                if i > 0
                    && matches!(v.kind(i - 1), Some(Tk::Num) | Some(Tk::Str) | Some(Tk::RParen))
                    && matches!(w, "update" | "insert" | "delete" | "drop" | "exec" | "execute" | "declare" | "waitfor" | "shutdown" | "create" | "alter" | "truncate")
                    && stmt_valid(v, i)
                {
                    found(hit(v, "sqli.stacked_query", 85, i, c), out);
                }
                // value that is a whole statement
                if (i == 0 || (quoted && i == 1))
                    && matches!(w, "select" | "insert" | "update" | "delete" | "drop" | "create" | "alter" | "truncate" | "exec" | "execute" | "declare" | "waitfor" | "shutdown" | "grant" | "revoke" | "merge")
                    && stmt_valid(v, i)
                    && !(w == "truncate" && weak_pg_statement(v, i))
                    && !prose_after(v, i + 1, 10)
                {
                    found(hit(v, "sqli.full_statement", 60, i, c), out);
                }
                if w == "waitfor" && matches!(v.kw(i + 1), "delay" | "time") && v.kind(i + 2) == Some(Tk::Str) {
                    found(hit(v, "sqli.time_delay", 95, i, c), out);
                }
                if w == "select" && stmt_valid(v, i) {
                    // SELECT ... FROM <name> <sql end>
                    let mut j = i + 1;
                    let lim = (i + 48).min(n);
                    let mut from = None;
                    while j < lim {
                        match v.t[j].kind {
                            Tk::Kw if v.t[j].kw == "from" => {
                                from = Some(j);
                                break;
                            }
                            Tk::Semi => break,
                            _ => {}
                        }
                        j += 1;
                    }
                    let sub = i > 0 && v.kind(i - 1) == Some(Tk::LParen);
                    if let Some(f) = from {
                        let mut k = f + 1;
                        // name(.name)* or (subquery)
                        let mut okname = false;
                        if v.kind(k) == Some(Tk::LParen) {
                            okname = true;
                        } else if v.kind(k) == Some(Tk::Func) && v.kind(k + 1) == Some(Tk::LParen) {
                            // A set-returning function (`FROM generate_series(1,5000000)`): the
                            // tail is read after its closing parenthesis.
                            let mut depth = 0usize;
                            k += 1;
                            while let Some(kind) = v.kind(k) {
                                match kind {
                                    Tk::LParen => depth += 1,
                                    Tk::RParen => depth -= 1,
                                    _ => {}
                                }
                                k += 1;
                                if depth == 0 {
                                    break;
                                }
                            }
                            okname = depth == 0;
                        } else {
                            while matches!(v.kind(k), Some(Tk::Bare) | Some(Tk::Kw) | Some(Tk::Var)) {
                                okname = true;
                                k += 1;
                                if v.kind(k) == Some(Tk::Dot) {
                                    k += 1;
                                    if v.kind(k) == Some(Tk::Dot) {
                                        k += 1;
                                    }
                                } else {
                                    break;
                                }
                            }
                        }
                        let tail_ok = okname
                            && match v.kind(k) {
                                None | Some(Tk::Semi) | Some(Tk::RParen) | Some(Tk::Comma) | Some(Tk::Union) | Some(Tk::LParen) => true,
                                Some(Tk::Kw) => matches!(v.kw(k), "where" | "limit" | "order" | "group" | "having" | "join" | "inner" | "left" | "as" | "offset" | "into" | "procedure" | "for" | "with"),
                                Some(Tk::Bare) => matches!(v.kind(k + 1), None | Some(Tk::RParen) | Some(Tk::Kw) | Some(Tk::Semi)),
                                _ => false,
                            };
                        let list_prose = prose_after(v, i + 1, f - i - 1);
                        if tail_ok && !list_prose {
                            found(hit(v, "sqli.select_from", if sub { 85 } else { 70 }, i, c), out);
                        }
                    } else if sub && !prose_after(v, i + 1, 6) {
                        found(hit(v, "sqli.subquery", 70, i - 1, c), out);
                    }
                }
            }
            Tk::Logic => {
                // tautology: OR 1=1, AND 'a'='a'
                if tautology_at(v, i + 1).is_some() {
                    found(hit(v, "sqli.tautology", 80, i, c), out);
                } else if constant_condition(v, i + 1, lone_number_before(v, i)) {
                    found(hit(v, "sqli.constant_condition", 70, i, c), out);
                }
                if i == 0 && (matches!(v.kind(1), Some(Tk::Num)) || matches!(v.kw(1), "true" | "false")) && n == 2 {
                    found(hit(v, "sqli.tautology", 60, i, c), out);
                }
                // `1 AND 0`, `-1 OR 1`: a numeric value that goes on with a true or false
                // operand and nothing else, the pair a boolean-blind scan sends
                if lone_number_before(v, i) && n == i + 2 && v.kind(i + 1) == Some(Tk::Num) && matches!(v.text(&v.t[i + 1]), b"0" | b"1") {
                    found(hit(v, "sqli.tautology", 60, i, c), out);
                }
                // blind: AND ascii(substring(...))>64, OR (select ...), AND sleep(...)
                let mut j = i + 1;
                let mut guard = 0;
                while guard < 6 && j < n {
                    match v.t[j].kind {
                        Tk::LParen | Tk::Num | Tk::Str | Tk::Cmp | Tk::Op => {}
                        Tk::Func => {
                            let name = v.func_name_lower(j);
                            let base = name.rsplit('.').next().unwrap_or("").to_string();
                            if known_function(&base) || name.contains('.') {
                                found(hit(v, "sqli.blind_boolean", 75, i, c), out);
                            }
                            break;
                        }
                        Tk::Kw if is_magic(v.t[j].kw) => {
                            found(hit(v, "sqli.blind_boolean", 75, i, c), out);
                            break;
                        }
                        Tk::Stmt if v.t[j].kw == "select" && j > 0 && v.t[j - 1].kind == Tk::LParen => {
                            found(hit(v, "sqli.blind_boolean", 75, i, c), out);
                            break;
                        }
                        _ => break,
                    }
                    j += 1;
                    guard += 1;
                }
                // OR 1-- / OR true#
                if matches!(v.kind(i + 1), Some(Tk::Num)) || matches!(v.kw(i + 1), "true") {
                    // (or with a LIMIT after it: `admin' or 1 limit 1#`, the login bypass)
                    let last_sig = i + 1 == n - 1 || v.kw(i + 2) == "limit" && v.kind(i + 3) == Some(Tk::Num) && i + 3 == n - 1;
                    let ends_comment = v.all.last().is_some_and(|t| t.kind == Tk::Comment && t.start >= v.t[i + 1].end && !prose_comment(v, t));
                    if last_sig && ends_comment {
                        found(hit(v, "sqli.tautology", 75, i, c), out);
                    }
                }
            }
            Tk::Kw => {
                if matches!(t.kw, "having" | "where") && tautology_at(v, i + 1).is_some() {
                    found(hit(v, "sqli.tautology", 80, i, c), out);
                }
                // ` HAVING 1=0-- `: a constant condition opening the value, ended by a wordless
                // truncating comment (the error-based probe of a GROUP BY query)
                if t.kw == "having" && i == 0 && constant_condition(v, 1, false) && v.all.last().is_some_and(|cm| wordless_comment(v, cm)) {
                    found(hit(v, "sqli.clause_probe", 70, i, c), out);
                }
                if t.kw == "limit" && i == 0 && v.kind(1) == Some(Tk::Num) && matches!(v.kind(2), Some(Tk::Comma)) {
                    found(hit(v, "sqli.clause_probe", 60, i, c), out);
                }
                // `ORDER BY 3-- -` as the whole value, appended to a numeric one: column numbers
                // (with commas, ASC or DESC), then a truncating comment with no word in it, right
                // after the last token or written `-- -`, `--+` (not `-- urgent`, `Order by 2 #`,
                // `GROUP BY 1 --`)
                let columns = n >= 3 && v.kind(2) == Some(Tk::Num)
                    && v.t[3..].iter().all(|x| matches!(x.kind, Tk::Num | Tk::Comma) || v.text(x).eq_ignore_ascii_case(b"asc") || v.text(x).eq_ignore_ascii_case(b"desc"));
                if (t.kw == "order" || t.kw == "group") && v.kw(i + 1) == "by" && i == 0 && columns
                    && v.all.last().is_some_and(|cm| {
                        wordless_comment(v, cm) && cm.start >= v.t[n - 1].end
                            && (cm.start == v.t[n - 1].end || matches!(v.text(cm), b"-- -" | b"--+" | b"--+-" | b"-- +"))
                    })
                {
                    found(hit(v, "sqli.order_by_probe", 70, i, c), out);
                }
                if (t.kw == "order" || t.kw == "group") && v.kw(i + 1) == "by" && i >= 1 {
                    // value ORDER BY n  [--]
                    let before_ok = v.t[..i].iter().all(|x| matches!(x.kind, Tk::Num | Tk::Str | Tk::RParen | Tk::Op | Tk::Comma));
                    let after = v.kind(i + 2);
                    if before_ok && matches!(after, Some(Tk::Num) | Some(Tk::LParen) | Some(Tk::Func)) {
                        found(hit(v, "sqli.order_by_probe", 70, i, c), out);
                    }
                }
                if t.kw == "into" && matches!(v.kw(i + 1), "outfile" | "dumpfile") {
                    found(hit(v, "sqli.into_outfile", 90, i, c), out);
                }
            }
            Tk::Num if matches!(v.kind(i + 1), Some(Tk::Op)) && matches!(v.kw(i + 1), "+" | "-" | "*" | "/") => {
                let mut j = i + 2;
                while j < n && j < i + 6 && matches!(v.t[j].kind, Tk::LParen | Tk::Num | Tk::Op) {
                    j += 1;
                }
                if j < n && v.t[j].kind == Tk::Func {
                    let name = v.func_name_lower(j);
                    if known_function(name.rsplit('.').next().unwrap_or("")) && v.t[j].kw != "if" {
                        found(hit(v, "sqli.blind_arithmetic", 70, i, c), out);
                    }
                }
            }
            Tk::Var => {
                // `@@version`, `@@global.max_connections`: a name of letters, not glued to a word
                // before it (`Wms@@MWd$9`, `@@O4JMpVH^`: random passwords)
                let name = &v.src[(t.start + 2).min(t.end)..t.end.min(v.src.len())];
                let named = name.iter().all(|b| b.is_ascii_alphabetic() || matches!(b, b'_' | b'.'));
                let apart = t.start == 0 || !v.src[t.start - 1].is_ascii_alphanumeric();
                if t.kw == "@@" && t.end - t.start > 3 && named && apart {
                    found(hit(v, "sqli.system_variable", 60, i, c), out);
                }
            }
            _ => {}
        }
    }

    // executable MySQL comment containing SQL
    for (ai, t) in v.all.iter().enumerate() {
        if t.kind == Tk::Comment && t.flag {
            if v.all.get(ai + 1).map(|x| matches!(x.kind, Tk::Stmt | Tk::Union | Tk::Logic | Tk::Kw | Tk::Func)).unwrap_or(false) {
                found(Hit { class: c, rule_id: "sqli.mysql_exec_comment", weight: 70, offset: t.start, length: (t.end - t.start).min(64), detail: "/*!".into() }, out);
            }
            break;
        }
    }

    // operator probe: x' AND 'y, ' || ', 'DIV'
    if quoted && n == 3 && v.t[0].flag && matches!(v.t[1].kind, Tk::Logic | Tk::Op | Tk::Cmp) && !matches!(v.t[1].kw, "in" | "is" | "not" | "escape" | "collate") && v.t[2].kind == Tk::Str && !v.t[2].flag {
        let pre = &v.src[..v.t[0].end - 1];
        let post = &v.src[v.t[2].start + 1..];
        let short = |b: &[u8]| b.len() <= 3 && !b.iter().any(|c| c.is_ascii_whitespace());
        if short(pre) && short(post) {
            found(hit(v, "sqli.operator_probe", 55, 0, c), out);
        }
    }
    // CASE WHEN ... THEN ... END
    if let Some(ci) = v.t.iter().position(|t| t.kw == "case") {
        if (ci == 0 || v.kind(ci - 1) == Some(Tk::LParen)) && !prose_after(v, ci, 12) {
            let has = |w: &str| v.t[ci..].iter().take(24).any(|t| t.kw == w);
            if has("when") && has("then") && has("end") {
                found(hit(v, "sqli.case_expression", 60, ci, c), out);
            }
        }
    }
    // MSSQL log hiding
    if v.all.iter().any(|t| t.kind == Tk::Comment && v.src[t.start..t.end.min(v.src.len())].windows(11).any(|w| w.eq_ignore_ascii_case(b"sp_password"))) {
        found(hit(v, "sqli.log_evasion", 80, 0, c), out);
    }
    if expression_comment(v, quoted) {
        found(hit(v, "sqli.expression_comment", 65, if quoted { 1 } else { 0 }, c), out);
    }

    // value [op value] LOGIC cmp-expression ... --  : expression closed by a trailing comment
    if n >= 4 && v.all.last().map(|t| t.kind == Tk::Comment).unwrap_or(false) {
        let has_logic = v.t.iter().any(|t| t.kind == Tk::Logic);
        let has_cmp = v.t.iter().any(|t| t.kind == Tk::Cmp);
        let first_val = matches!(v.t[0].kind, Tk::Num | Tk::Str | Tk::RParen);
        if has_logic && has_cmp && first_val && !prose_after(v, 0, n) {
            found(hit(v, "sqli.comment_terminated", 65, 0, c), out);
        }
    }
}

/// Run SQL analysis on `text` in the given quote contexts.
/// `1'"(`, `'".(),`: a run of nothing but quotes, parentheses, commas and dots with both kinds
/// of quote and a parenthesis, the probe scanners append to a value to provoke a syntax error
/// (wapiti's `'"(`, sqlmap's heuristic check). A probe, not yet an injection: weighted below
/// the free-text threshold. Returns the run's start and length.
fn quote_probe(src: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < src.len() {
        let start = i;
        while i < src.len() && matches!(src[i], b'\'' | b'"' | b'(' | b')' | b',' | b'.') {
            i += 1;
        }
        let run = &src[start..i];
        if run.len() >= 3 && run.contains(&b'\'') && run.contains(&b'"') && run.iter().any(|c| matches!(c, b'(' | b')')) {
            return Some((start, run.len()));
        }
        i += 1;
    }
    None
}

pub fn scan(text: &str, quotes: &[Option<u8>], out: &mut Vec<Hit>) {
    let src = text.as_bytes();
    if let Some((offset, length)) = quote_probe(src) {
        out.push(Hit { class: Class::Sqli, rule_id: "sqli.quote_probe", weight: 60, offset, length, detail: format!("match={:?}", &text[offset..offset + length]) });
    }
    let mut all = Vec::new();
    for &q in quotes {
        if q.is_some_and(|qc| context_absent(src, qc)) {
            continue;
        }
        tokenize(src, q, &mut all);
        let t: Vec<Token> = all.iter().copied().filter(|t| t.kind != Tk::Comment).collect();
        let v = View { src, t, all: std::mem::take(&mut all) };
        let before = out.len();
        analyze(&v, q.is_some(), out);
        // `Pa$$ -- temporary`, `Lost $$ -- ouch`: after a dollar sign, a comment in words is an
        // aside (a payload's is empty or one token).
        if q == Some(DOLLAR) && v.all.iter().rev().find(|t| t.kind == Tk::Comment).is_some_and(|t| prose_comment(&v, t)) {
            let kept: Vec<Hit> = out.drain(before..).filter(|h| h.rule_id != "sqli.breakout_comment").collect();
            out.extend(kept);
        }
        // Past the token cap the rest of the value is not read: padding could hide a payload
        // there, so such a value is not passed as clean (fail closed; once, for the plain view).
        // (Only when the unread tail has bytes SQL needs: a long list of words or numbers is
        // not a hiding place.)
        let unread = v.all.last().map_or(0, |t| t.end).min(src.len());
        if q.is_none() && v.all.len() >= MAX_TOKENS && src[unread..].iter().any(|b| b"'\";()=*/-#|".contains(b)) {
            out.push(hit(&v, "sqli.too_long_to_inspect", 80, 0, Class::Sqli));
        }
        if let Some(qc) = q {
            for h in &mut out[before..] {
                let ctx = match qc {
                    b'\'' => "sq",
                    b'"' => "dq",
                    b'`' => "bq",
                    _ => "dollar",
                };
                h.detail = format!("{} ctx={ctx}", h.detail);
            }
        }
        all = v.all;
    }
}

/// Fingerprint of a view (for tests / debugging).
#[allow(dead_code)]
pub fn fingerprint(text: &str, q: Option<u8>) -> String {
    let mut all = Vec::new();
    tokenize(text.as_bytes(), q, &mut all);
    all.iter().map(|t| t.kind.ch()).collect()
}
