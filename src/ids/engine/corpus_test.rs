//! Corpus-based acceptance test: detection rates per class and false-alarm rates.
//! Corpus: `$TG_CORPUS_DIR` or `<crate>/../shared/corpus`. `TG_SKIP_CORPUS=1` skips
//! (only) when the files are missing. `TG_CORPUS_DUMP=<file>` writes misses and false
//! alarms there for tuning.

use super::{check, is_attack, Context};
use std::fs;
use std::path::{Path, PathBuf};

/// The shared corpus: `TG_CORPUS_DIR`, else `../shared/corpus` beside this repository, else
/// beside the repository this one was cloned from when that is a local path (a clean clone made
/// elsewhere, e.g. `git clone . /tmp/check`, to run CI on).
fn corpus_dir() -> PathBuf {
    if let Ok(d) = std::env::var("TG_CORPUS_DIR") {
        if !d.is_empty() {
            return PathBuf::from(d);
        }
    }
    let here = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus"));
    if here.is_dir() {
        return here;
    }
    let origin = std::process::Command::new("git")
        .args(["-C", env!("CARGO_MANIFEST_DIR"), "config", "--get", "remote.origin.url"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|u| u.starts_with('/'));
    match origin {
        Some(o) if PathBuf::from(&o).join("../shared/corpus").is_dir() => PathBuf::from(o).join("../shared/corpus"),
        _ => here,
    }
}

fn skip() -> bool {
    std::env::var("TG_SKIP_CORPUS").map(|v| v == "1").unwrap_or(false)
}

fn hexval(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Decode a URL-encoded corpus line once (`+` is a space).
pub fn url_decode_line(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() && hexval(b[i + 1]).is_some() && hexval(b[i + 2]).is_some() => {
                out.push(hexval(b[i + 1]).unwrap() * 16 + hexval(b[i + 2]).unwrap());
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn lines_of(path: &Path, url_encoded: bool) -> Vec<String> {
    let raw = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {}", path.display(), e));
    let text = String::from_utf8_lossy(&raw);
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| if url_encoded { url_decode_line(l) } else { l.to_string() })
        .collect()
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {}", dir.display(), e))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn is_libinjection(p: &Path) -> bool {
    p.file_name().and_then(|n| n.to_str()).map(|n| n.starts_with("libinjection")).unwrap_or(false)
}

/// Realistic benign values of a trading system (must all pass in auto context).
pub const TRADING_BENIGN: &[&str] = &[
    "AT&T", "AT&T Inc.", "Procter & Gamble", "Johnson & Johnson", "Marks & Spencer", "Barnes & Noble", "H&M", "S&P 500", "P&L report", "R&D spend",
    "O'Reilly", "O'Reilly Automotive", "McDonald's", "Let's meet at 5 -- maybe 6", "DROP the Q3 position -- risky", "1/2 of the order",
    "reports/2026/q3.pdf", "reports/2026/q3 (final).pdf", "trader.one@example.com", "first.last+tag@example.co.uk", "https://example.com/a/b?x=1&y=2",
    "https://www.sec.gov/cgi-bin/browse-edgar?action=getcompany&CIK=0000320193", "US0378331005", "JP3633400001", "DE000BAY0017", "1,234.50",
    "-1,234.50", "+0.75%", "¥2,845", "€1.234,56", "$1,000", "USD/JPY 151.20", "EUR/USD", "BRK.B", "7203.T", "{\"side\":\"buy\",\"qty\":100}",
    "{\"price\": 152.3, \"tags\": [\"fx\", \"hedge\"]}", "[1, 2, 3]", "price > 100 and qty < 50", "qty >= 10 or price <= 5", "Union Pacific",
    "Union Pacific Corp", "select the best performers, drop the laggards", "Selected: 3 of 5 orders", "Delete the old watchlist tomorrow",
    "Update the order; then notify the desk", "Insert a note for compliance", "Order #42: buy 100 @ 99.5", "ref: A-17/B", "Q3'26 outlook",
    "It's a 'buy' signal, isn't it?", "He said \"sell\" twice", "50/50 split", "3/4 filled", "1=1 hedge ratio", "TP 3,100 / SL 2,800",
    "東証プライム: 7203 を 100株 成行で買い", "損切りライン 2,800円", "三菱UFJフィナンシャル・グループ", "ソフトバンクグループ", "Sleep well tonight",
    "Benchmark: TOPIX", "echo of the rally", "cat bond exposure", "type: limit", "more to come", "ping me later", "Ping the desk at 5",
    "find the best fill", "time in force: GTC", "date: 2026-11-25", "net exposure 1.2m", "Net user growth was strong", "set stop to 2,800",
    "Buy; sell; hold", "buy | sell", "A & B", "Tom & Jerry Ltd", "rock & roll", "Q&A session", "B&W photo", "M&A deal", "C:\\Users\\trader\\Documents\\pnl.xlsx",
    "D:\\exports\\2026\\q3.csv", "/home/trader/reports/pnl.csv", "./run.sh is not allowed here", "see section 3.2(a)", "f(x) = 2x + 1", "(see above)",
    "Note: order #123 (partial) filled", "Bid/ask spread: 0.01", "ratio = 0.5", "alpha=0.05; beta=1.2", "MAX_POSITION_SIZE=100000", "qty=100&side=buy",
    "name: John O'Neil; desk: FX", "<b>bold</b> note", "<i>important</i>", "5 > 3 and 2 < 4", "x < y", "100% cash -- waiting", "down 2% today",
    "Call option @ 150", "Put/Call ratio 0.8", "Order from Tokyo desk", "from 10:00 to 11:00", "where: Tokyo", "group A order B", "order by phone",
    "Sort order: by date", "Having a call at 3", "The union of both sets", "Select Medical Holdings", "drop table? no, drop the table tennis idea",
    "Execute the plan; review later", "Don't sell AAPL -- wait for earnings", "it's 5' 10\" tall", "Rock 'n' Roll Inc.", "Dick's Sporting Goods; Kohl's",
    "user@example.com; admin@example.com", "alert: margin call", "Alert(s) pending", "onion futures", "online order", "onset of the rally",
    "window.size = 20 days", "document: Q3 report", "script review meeting", "Mr. Smith's iframe-free report", "eval period ends 12/31",
    "Print the report (2 copies)", "confirm the order (ID 42)", "P/E 15.2x", "EV/EBITDA 8.1", "+81-3-1234-5678", "10.0.0.12",
    "2026-11-25T12:00:00Z", "GTC; reduce-only", "IOC | FOK", "mean-reversion v2.1 (alpha=0.05)", "TRUE", "NULL", "N/A", "-", "--", "...",
    "Buy when RSI < 30 and MACD > 0",
    "Stop-loss: 5%; take-profit: 10%",
    "Client's order -- see email from Bob",
    "Re: 'Q3' results & outlook",
    "Bought 200 @ 101.25 (avg); sold 100 @ 103.10",
    "Margin call: deposit $5,000 by 5pm",
    "The fund's NAV = $12.34/share",
    "\"Sell in May and go away\" -- old adage",
    "Merger of Exxon & Mobil (1999)",
    "L&T, M&M, and HDFC to be reviewed",
    "Order ref: ORD-2026-11-25/0042",
    "ISIN: US0378331005; CUSIP: 037833100",
    "{\"symbol\":\"AAPL\",\"side\":\"sell\",\"qty\":50,\"limit\":189.5}",
    "[{\"id\":1,\"px\":\"1,234.50\"},{\"id\":2,\"px\":\"987.00\"}]",
    "<p>Quarterly report attached</p>",
    "Email: trader+fx@firm.co.jp; phone: +81 3-1234-5678",
    "Reduce exposure to 1/3; hedge the rest",
    "Hold -- don't add until earnings (10/30)",
    "He said: \"cut it\", so we cut it",
    "Select Comfort Corp",
    "Delete Corp? No: Dell Technologies",
    "Drop-ship orders from vendor #12",
    "Union Bank of India; State Bank of India",
    "Execute at VWAP between 09:00 and 11:30",
    "Set alert if price > 200 or < 150",
    "Where to put the stop? below 2,750",
    "Order by Friday or cancel",
    "Create a new watchlist for semis",
    "Insert coin to continue (joke)",
    "Update risk model v3.2 -> v3.3",
    "Having a bad day on the desk",
    "grep the logs for 'timeout' errors",
    "Path: /data/exports/2026/11/trades.csv",
    "File saved to C:\\Reports\\Q3\\summary.docx",
    "shared\\templates is the old folder",
    "Price target: 3,200円 (+12.5%)",
    "三井住友フィナンシャルグループ 8316",
    "日経225先物 12月限 38,500で買い",
    "株式会社ファーストリテイリング",
    "Ping me when it's filled!",
    "Echo Global Logistics",
    "Cat Financial (Caterpillar)",
    "Type: market; TIF: IOC",
    "Net income rose 12% y/y",
    "Sleep Number Corp",
    "Benchmark Electronics",
    "Sort by P/E, then by yield",
    "Alert(1 of 3): spread widened",
    "confirm(ed) by compliance",
    "eval date 2026-12-01",
    "window dressing at quarter end",
    "document the trade rationale",
    "onboarding: new client KYC",
    "online brokerage account",
    "A/B test of order routing",
    "100 shares x $50 = $5,000",
    "1 + 1 = 2 lots",
    "2*3 = 6 contracts total",
    "Q: why short? A: overvalued",
    "Proctor & Gamble (sic)",
    "AT&amp;T",
    "Barnes &amp; Noble Education",
    "R&amp;D tax credit",
    "<b>Important:</b> check margin",
    "Tom's \"special\" basket",
    "McDonald's; Wendy's; Burger King",
    "'Buy' rating reiterated",
    "\"Overweight\" -> \"Neutral\"",
    "O'Neil, William J.",
    "D'Amico & Partners",
    "Smith's order (id: 42) - partial",
    "#TSLA #NVDA trending",
    "@desk please review",
    "$AAPL $MSFT earnings week",
    "50% off? no, 50 bps",
    "5' 10\" trader",
    "Ticker: BRK/B",
    "Rate: 4.25%-4.50%",
    "Limit 10; max 20",
    "then; else; end",
    "Win/loss ratio: 3/2",
    "See https://example.com/a?b=1&c=2#frag",
    "ftp://files.example.com/pub/report.pdf",
    "./scripts/run_report.sh weekly",
    "~/reports/q3.xlsx",
    "user.name@sub.example.org",
    "192.168.1.10:8080",
    "2026-11-25 09:30:00+09:00",
    "SELECT-ed by the committee",
    "drop-down menu",
    "order_by_date",
    "exec summary attached",
    "\"union\" membership fees",
    "Sells 1,000 @ 52.10 -- filled",
    "Wait... then buy", "Note... see ../ above", "file name: q3..final.pdf", "a.b.c.d", "lvl 1..5", "What's 1 OR 2?", "Jones' or Smith's book",
];

struct Tally {
    name: String,
    total: usize,
    hit: usize,
}

#[test]
fn corpus_rates() {
    let dir = corpus_dir();
    let dump_path = std::env::var("TG_CORPUS_DUMP").ok();
    let mut dump = String::new();
    if !dir.join("attack").is_dir() {
        if skip() {
            eprintln!("corpus not found at {} (TG_SKIP_CORPUS=1): skipped", dir.display());
            return;
        }
        panic!("injection corpus not found at {} (set TG_CORPUS_DIR, or TG_SKIP_CORPUS=1 to skip)", dir.display());
    }
    let mut failures = Vec::new();
    let mut report = Vec::new();
    for (class, target) in [("sqli", 0.99), ("xss", 0.98), ("cmdi", 0.95), ("traversal", 0.95)] {
        let mut t = Tally { name: class.into(), total: 0, hit: 0 };
        for f in files_in(&dir.join("attack").join(class)) {
            for l in lines_of(&f, is_libinjection(&f)) {
                t.total += 1;
                let a = is_attack(&l, Context::Auto);
                assert_eq!(a, check(&l, Context::Auto).is_attack, "is_attack/check disagree on {:?}", l);
                if a {
                    t.hit += 1;
                } else if dump_path.is_some() {
                    dump.push_str(&format!("MISS {}\t{:?}\n", class, l));
                }
            }
        }
        let rate = t.hit as f64 / t.total.max(1) as f64;
        report.push(format!("detect {:<10} {:>6}/{:<6} = {:.4} (target {:.2})", t.name, t.hit, t.total, rate, target));
        if rate < target || t.total == 0 {
            failures.push(format!("{} detection {:.4} < {}", class, rate, target));
        }
    }
    // benign sets: (name, lines, max false-alarm rate)
    let mut benign: Vec<(String, Vec<String>, f64)> = Vec::new();
    benign.push(("trading-notes".into(), lines_of(&dir.join("benign/trading-notes.txt"), false), 0.0));
    benign.push(("trading-extra".into(), TRADING_BENIGN.iter().map(|s| s.to_string()).collect(), 0.0));
    let dict = Path::new("/usr/share/dict/american-english");
    let fortunes = Path::new("/usr/share/games/fortunes");
    if dict.is_file() && fortunes.is_dir() {
        benign.push(("dict".into(), lines_of(dict, false), 0.001));
        let mut fl = Vec::new();
        for f in files_in(fortunes) {
            let name = f.file_name().unwrap().to_string_lossy().to_string();
            if name.ends_with(".dat") || name.ends_with(".u8") {
                continue;
            }
            for l in lines_of(&f, false) {
                if l.trim() != "%" {
                    fl.push(l);
                }
            }
        }
        benign.push(("fortunes".into(), fl, 0.001));
    } else if !skip() {
        panic!("/usr/share/dict/american-english or /usr/share/games/fortunes missing: apt-get install -y wamerican fortunes-min (or TG_SKIP_CORPUS=1)");
    }
    let fp_lines = lines_of(&dir.join("benign/libinjection-false_positives.txt"), true);
    for (name, lines, max) in &benign {
        let fa = lines.iter().filter(|l| {
            let a = is_attack(l, Context::Auto);
            if a && dump_path.is_some() {
                let v = check(l, Context::Auto);
                let ids: Vec<&str> = v.findings.iter().map(|f| f.rule_id).collect();
                dump.push_str(&format!("FA {}\t{:?}\t{:?}\n", name, l, ids));
            }
            a
        }).count();
        let rate = fa as f64 / lines.len().max(1) as f64;
        report.push(format!("false-alarm {:<14} {:>5}/{:<6} = {:.5} (max {})", name, fa, lines.len(), rate, max));
        if rate > *max {
            failures.push(format!("{} false alarms {:.5} > {}", name, rate, max));
        }
    }
    // libinjection's historical false positives: it flagged all of them; we must flag fewer.
    let fa = fp_lines.iter().filter(|l| {
        let a = is_attack(l, Context::Auto);
        if a && dump_path.is_some() {
            let v = check(l, Context::Auto);
            let ids: Vec<&str> = v.findings.iter().map(|f| f.rule_id).collect();
            dump.push_str(&format!("FA libinj-fp\t{:?}\t{:?}\n", l, ids));
        }
        a
    }).count();
    report.push(format!("false-alarm {:<14} {:>5}/{:<6} = {:.5} (must stay well below libinjection)", "libinj-fp", fa, fp_lines.len(), fa as f64 / fp_lines.len().max(1) as f64));
    // libinjection (libinjection-python 1.1.6, sqli or xss) flags 21/421 = 4.99% of these.
    if fa as f64 / fp_lines.len().max(1) as f64 >= 0.045 {
        failures.push(format!("libinjection false-positive set: {} alarms, not fewer than libinjection", fa));
    }
    for r in &report {
        println!("{}", r);
    }
    if let Some(p) = dump_path {
        fs::write(p, dump).unwrap();
    }
    assert!(failures.is_empty(), "corpus targets missed: {:?}\n{}", failures, report.join("\n"));
}

/// Samples written for this project (not from the public corpus): notes a trading desk types
/// (SQL and shell words in prose, tickers with `&`, Japanese) and attacks typed into the same
/// fields. Every benign sample passes; every attack is caught.
#[test]
fn trading_samples() {
    let lines = |s: &'static str| s.lines().filter(|l| !l.trim().is_empty()).collect::<Vec<_>>();
    let benign = lines(include_str!("samples/trading_benign.txt"));
    let attack = lines(include_str!("samples/trading_attack.txt"));
    assert!(benign.len() > 800 && attack.len() > 280);
    let wrong: Vec<String> = benign
        .iter()
        .map(|l| (l, false))
        .chain(attack.iter().map(|l| (l, true)))
        .filter(|(l, want)| is_attack(l, Context::Auto) != *want)
        .map(|(l, want)| format!("{} {l:?}", if want { "missed" } else { "false alarm" }))
        .collect();
    assert!(wrong.is_empty(), "{wrong:#?}");
}

/// Not a test: a tool for measuring the check on sample files that are not in the corpus
/// (other payload collections, other benign text), run by hand:
/// `TG_EVAL=attack:/path/a.txt,benign:/path/b.txt cargo test --release --lib eval_files -- --ignored --nocapture`.
/// One sample per line, raw (`attack-url:`/`benign-url:` URL-decode each line first); prints
/// the rate per file and, with `TG_EVAL_MISSES=1`, every miss and false alarm with its findings.
#[test]
#[ignore]
fn eval_files() {
    let spec = std::env::var("TG_EVAL").expect("TG_EVAL=attack:FILE,benign:FILE,...");
    let show = std::env::var("TG_EVAL_MISSES").is_ok_and(|v| v == "1");
    for item in spec.split(',').filter(|s| !s.is_empty()) {
        let (kind, path) = item.split_once(':').expect("KIND:FILE");
        let want = kind.starts_with("attack");
        let lines = lines_of(Path::new(path), kind.ends_with("-url"));
        let wrong: Vec<&String> = lines.iter().filter(|l| is_attack(l, Context::Auto) != want).collect();
        let right = lines.len() - wrong.len();
        println!("{kind:<10} {path}: {right}/{} = {:.4}{}", lines.len(), right as f64 / lines.len().max(1) as f64, if want { " detected" } else { " passed" });
        if show {
            for l in &wrong {
                let rules: Vec<String> = check(l, Context::Auto).findings.iter().map(|f| format!("{} {}", f.rule_id, f.detail)).collect();
                println!("    {} {l}  {rules:?}", if want { "missed" } else { "alarm " });
            }
        }
    }
}
