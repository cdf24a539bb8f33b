//! OS command injection: shell separators followed by a command word, command
//! substitution, IFS tricks, shellshock, SSI and template probes.

use super::{Class, Hit, Seen};
use regex::Regex;
use std::collections::HashSet;
use std::sync::OnceLock;

fn set(list: &'static [&'static str]) -> HashSet<&'static str> {
    list.iter().copied().collect()
}

fn strong(w: &str) -> bool {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| set(STRONG)).contains(w)
}

fn weak(w: &str) -> bool {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| set(WEAK)).contains(w)
}

/// Whether `w` (lowercase) is a command name the check knows.
pub(crate) fn is_command(w: &str) -> bool {
    strong(w) || weak(w) || very_strong(w)
}

fn very_strong(w: &str) -> bool {
    static S: OnceLock<HashSet<&'static str>> = OnceLock::new();
    S.get_or_init(|| set(VERY_STRONG)).contains(w)
}

/// Regex alternation of all command names (longest first).
fn command_alternation() -> String {
    let mut v: Vec<&str> = STRONG.iter().chain(WEAK.iter()).chain(VERY_STRONG.iter()).chain(GUARDED.iter()).copied().collect();
    v.sort_by(|a, b| b.len().cmp(&a.len()).then(a.cmp(b)));
    v.dedup();
    v.iter().map(|w| regex::escape(w)).collect::<Vec<_>>().join("|")
}

/// Commands that are rarely English words: any use after a separator is suspicious.
const STRONG: &[&str] = &[
    "whoami", "uname", "ifconfig", "ipconfig", "netstat", "systeminfo", "wget", "curl", "nc", "ncat", "netcat", "bash", "sh", "zsh", "ksh",
    "csh", "tcsh", "dash", "powershell", "pwsh", "cmd", "cmd.exe", "certutil", "bitsadmin", "nslookup", "tasklist", "taskkill", "perl", "python",
    "python2", "python3", "php", "ruby", "telnet", "chmod", "chown", "mkfifo", "xterm", "base64", "xxd", "hostname", "crontab", "wmic", "ls",
    "pwd", "id", "env", "printenv", "uname", "sudo", "su", "passwd", "nmap", "socat", "tftp", "ftp", "rm", "wget.exe", "curl.exe", "mshta",
    "rundll32", "regsvr32", "cscript", "wscript", "getent", "lsof", "killall", "pkill", "shutdown", "reboot", "ipconfig.exe", "arp", "route",
    "traceroute", "tracert", "dig", "host", "gcc", "cc", "awk", "sed", "xargs", "nohup", "busybox", "fetch", "lynx", "sysctl", "dmesg",
    "useradd", "usermod", "net.exe", "vssadmin", "icacls", "cacls", "attrib", "findstr", "ps", "cat", "ver", "dir", "del", "netsh", "sysinfo",
    "phpinfo", "route", "ipconfig", "schtasks",
    // PowerShell's cmdlets of download-and-run, processes and defences (its aliases `iex`, `iwr`,
    // `irm` are GUARDED: IEX is also an exchange)
    "invoke-expression", "invoke-webrequest", "invoke-restmethod", "start-process", "new-object", "start-bitstransfer",
    "set-mppreference", "add-mppreference", "start-sleep",
    // Windows: event logs, installers, sessions
    "wevtutil", "msiexec", "quser", "qwinsta",
];
/// Command names that are also abbreviations in trading notes (`ps 3`: position size, `ls 100`:
/// lot size, `id 7`): with only a bare number after them, at the end of a value, they are notes.
const NOTE_ABBREVIATIONS: &[&str] = &["ps", "id", "ls", "cc", "su", "ver", "dir", "cat", "dig", "host", "route", "env", "arp", "fetch"];
/// Commands that are also words or abbreviations of notes (`java 17`, `IP 10.0.0.5`, `ss 40`):
/// they count after a separator only with the argument that makes them a command line (see
/// `guarded_command`), and are not command names elsewhere (`is_command`).
const GUARDED: &[&str] = &["java", "lua", "luajit", "node", "nodejs", "ip", "ss", "waitfor", "iex", "iwr", "irm"];

/// The weight of a `GUARDED` command word before `follow` (the argument as matched): `java -jar`,
/// `lua -e`, `node -e`, `ip addr`, `ss -tulpn`, `waitfor /t 5`.
fn guarded_command(w: &str, follow: &str) -> Option<u8> {
    let f = follow.trim_start().to_ascii_lowercase();
    let first = f.split_whitespace().next().unwrap_or("");
    let ok = match w {
        // (JVM options may come first: `java -Xmx1g -jar`)
        "java" => matches!(first, "-jar" | "-cp" | "-classpath") || first.starts_with("-x") || first.starts_with("-d"),
        "lua" | "luajit" => first == "-e",
        "node" | "nodejs" => matches!(first, "-e" | "--eval" | "-p" | "--print" | "-pe"),
        // (not `ip address`, `ip route`, `ip link`: words of prose)
        "ip" => {
            let (sub, whole) = subcommand(follow);
            whole && matches!(sub.as_str(), "addr" | "neigh" | "netns")
        }
        "ss" => {
            let flags = first.trim_start_matches('-');
            first.starts_with('-') && first.len() - flags.len() <= 2 && !flags.is_empty() && flags.bytes().all(|c| c.is_ascii_alphanumeric())
        }
        "waitfor" => first == "/t",
        // PowerShell's aliases before what they take: an expression, a variable, a URL
        // (`iex (iwr http://x/p.ps1)`, `iex(irm ..)`, `iwr -Uri ..`); not the exchange (`IEX 200 @ 12.5`)
        "iex" | "iwr" | "irm" => f.starts_with(['(', '$', '[']) || f.starts_with("http") || first.starts_with("-uri") || first.starts_with("-usebasic"),
        _ => false,
    };
    ok.then_some(85)
}

/// A host name as a network command's argument (`dig evil.com`, `dig x.attacker.example`): two labels
/// or more of letters, digits and hyphens, the last one letters only.
fn host_name(token: &str) -> bool {
    let labels: Vec<&str> = token.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|l| !l.is_empty() && l.len() <= 63 && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
        && labels.last().is_some_and(|l| (2..=12).contains(&l.len()) && l.bytes().all(|c| c.is_ascii_alphabetic()))
}

/// Whether an ANSI-C quoted string (`$'...'`, escapes included) spells a word or a path: one
/// escape at least, and every character, decoded, a letter, digit or one of `/._-`.
fn ansi_c_word(quoted: &str) -> bool {
    let body = quoted.trim_start_matches("$'").trim_end_matches('\'');
    let b = body.as_bytes();
    let (mut i, mut escapes) = (0, 0);
    while i < b.len() {
        let c = if b[i] == b'\\' && i + 1 < b.len() {
            escapes += 1;
            let (radix, max, skip) = match b[i + 1] {
                b'x' => (16, 2, 2),
                b'u' => (16, 4, 2),
                _ => (8, 3, 1),
            };
            let digits: String = body.get(i + skip..).unwrap_or("").chars().take(max).take_while(|c| c.is_digit(radix)).collect();
            i += skip + digits.len();
            u32::from_str_radix(&digits, radix).ok().and_then(char::from_u32).unwrap_or('\0')
        } else {
            i += 1;
            b[i - 1] as char
        };
        if !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-')) {
            return false;
        }
    }
    escapes > 0
}

/// Commands that are also common words: need a shell-looking argument.
const WEAK: &[&str] = &[
    "type", "more", "echo", "sleep", "ping", "find", "kill", "set", "time", "date", "head", "tail", "less", "sort", "touch", "cp", "mv", "who",
    "w", "grep", "which", "net", "print", "start", "call", "exit", "copy", "move", "mkdir", "rmdir", "timeout", "eval", "exec", "source",
    "export", "alias", "read", "nl", "od", "tac", "rev", "uniq", "cut", "file", "stat", "last", "users", "groups", "history", "wc", "tee", "reg",
    "sc", "system", "expr",
];

struct Rx {
    sep_cmd: Regex,
    start_cmd: Regex,
    subst: Regex,
    ifs: Regex,
    jndi: Regex,
    glob_path: Regex,
    shellshock: Regex,
    ssi: Regex,
    template: Regex,
    code_exec: Regex,
    code_breakout: Regex,
    ansi_c: Regex,
    brace: Regex,
    dde: Regex,
    process_start: Regex,
    var_shell: Regex,
    shell_misc: Regex,
}

fn rx() -> &'static Rx {
    static R: OnceLock<Rx> = OnceLock::new();
    R.get_or_init(|| {
        let cmds = command_alternation();
        let path = r#"(?:[\\/]?(?:usr[\\/])?(?:local[\\/])?s?bin[\\/]|[a-z]:\\(?:windows\\)?(?:system32\\)?|%(?:windir|systemroot)%\\(?:system32\\)?|\\\\?)?"#;
        Rx {
            // separator, optional quote/space, optional shell keyword (`;then sleep 5`, `;if id`), optional
            // path, command word, then the following char(s)
            sep_cmd: Regex::new(&format!(r#"(?i)(?:;|\|\|?|&&?|\n|\r|`|\$\(|%0a|['"])[\s"'(]*(?:\x1b\[[0-9;]*(?-i:[A-Z])?)?(?:(?:if|then|else|elif|do|while|until|time|command|builtin)\s+)?{}((?:{})(?:\.exe)?)(\$\{{?ifs\}}?|[\s\x00]+[^\s]{{0,12}}|[;|&`)"'<>#\n]|$)"#, path, cmds)).unwrap(),
            start_cmd: Regex::new(&format!(r#"(?i)^[\s"']*{}([a-z][a-z0-9_.]*)(\$\{{?ifs\}}?|[\s\x00]+[^\s]{{0,12}})"#, path)).unwrap(),
            subst: Regex::new(r#"(?i)\$\([\s]*[a-z/\\][^)]{0,200}\)|`[\s]*[a-z/\\][^`]{0,200}`"#).unwrap(),
            ifs: Regex::new(r"(?i)\$\{?ifs\}?|\$\{[a-z_]+:[0-9]|\$\{[a-z_]+[#%/^,]").unwrap(),
            // Log4Shell lookups, nested-lookup obfuscation included (`${${lower:j}ndi:`, `${j${::-n}di:`)
            jndi: Regex::new(r"(?i)\$\{(?:jndi|\$\{[^{}]{0,20}\}[^{}:]{0,6}|j[^{}:]{0,6}\$\{[^{}]{0,20}\}[^{}:]{0,6}):").unwrap(),
            // a command named by a wildcard path after a separator: `;/bin/ca?/et?/pass??`, `|/???/c?t`
            glob_path: Regex::new(r"(?i)(?:[;|&\n`]|\$\()[\s]*(?:/[a-z0-9_.?*\[\]-]+){2,}(?:[\s;|&)`]|$)").unwrap(),
            shellshock: Regex::new(r"\(\s*\)\s*\{\s*:?\s*;?\s*\}\s*;").unwrap(),
            // (and Edge Side Includes, `<esi:include src=..>`, `<esi:debug/>`)
            ssi: Regex::new(r"(?i)<!--\s*#\s*(?:exec|include|echo|config|set|printenv|flastmod|fsize)(?-u:\b)|<esi:(?:include|debug|vars|inline|choose|when|otherwise|try|attempt|assign|eval|text)(?-u:\b)").unwrap(),
            // Template expressions: `{{7*7}}`, `{{person.secret}}`, `{{''.__class__}}`, Flask's and
            // Django's objects; not a placeholder of one plain name (`{{ticker}} daily summary`)
            template: Regex::new(r"\{\{[^{}]{0,200}(?:[^{}\sA-Za-z0-9_]|__)[^{}]{0,200}\}\}|(?i:\{%-?\s*(?:for|if|set|import|include|extends|macro|raw|debug|load|block|with|print|exec)(?-u:\b)[^%]{0,200}%\})|\{\$[^}]{1,100}\}|\$\{\s*\d+\s*[*+\-/]\s*\d+\s*\}|<%=?\s*\d+\s*[*+]\s*\d+\s*%>|#\{\s*\d+\s*[*+]\s*\d+\s*\}|\{\{\s*(?:config|self|request|_self|settings|lipsum|cycler|joiner|namespace|url_for|get_flashed_messages|''\.__class__)(?-u:\b)|(?i:freemarker\.template\.utility\.execute|[\x22']\?new\(\)|\.getclass\(\s*\)\.forname\(|\.class\.forname\(|\.protectiondomain\.classloader|getprotectiondomain\(\))").unwrap(),
            code_exec: Regex::new(r"(?i)(?-u:\b)(?:system|exec|shell_exec|passthru|popen|proc_open|pcntl_exec|os\.system|os\.popen|subprocess\.\w+|runtime\.getruntime\(\)\.exec|child_process|require\s*\(\s*['\x22]child_process|eval)\s*\(\s*['\x22$]|(?-u:\b)(?:phpinfo|phpversion|php_uname|getenv)\s*\(\s*\)|\$_(?:get|post|request|cookie|server|files)(?-u:\b)|\$\{@?[a-z_]+\s*\(").unwrap(),
            // Bash's ANSI-C quoting spelling a word in escapes: `$'\x69\x64'`, `$'\151\144'` run `id`
            ansi_c: Regex::new(r"\$'(?:[A-Za-z0-9/._-]|\\(?:x[0-9a-fA-F]{1,2}|[0-7]{1,3}|u[0-9a-fA-F]{4})){1,40}'").unwrap(),
            // Brace expansion after a separator running its first word: `;{id,}`, `|{cat,/etc/passwd}`
            brace: Regex::new(r"(?:[;|&\n`]|\$\()[\s]*\{([A-Za-z/][\w./-]{0,40}),([^{}\s]{0,200})\}").unwrap(),
            // A spreadsheet formula that runs a program through DDE when the export is opened
            // (`=cmd|'/C calc'!A0`, `@SUM(1+1)*cmd|' /C calc'!A0`), or a DDEAUTO field.
            // (a program as the DDE server: `=EXCEL|'..[Book1.xlsx]Sheet1'!R1C1` is a link)
            dde: Regex::new(r#"(?i)(?:^|[=+\-@*(&,;])[\s]*(?:cmd|powershell|pwsh|mshta|msexcel|rundll32|regsvr32|certutil|msiexec|cscript|wscript|calc|wmic|bitsadmin)(?:\.exe)?[\s]*\|[\s]*['"][^'"\n]{0,200}['"][\s]*!|(?-u:\b)ddeauto[\s]+["']?(?:[a-z]:\\|[^\s"']*(?:cmd|powershell|mshta|calc))|(?:^|[=+\-@])[\s]*dde[\s]*\([\s]*"(?:cmd|powershell|pwsh|mshta|rundll32|calc|cscript|wscript)"#).unwrap(),
            // .NET's Process.Start of a shell or a system tool (not of a URL: `Process.Start("https://..")`)
            process_start: Regex::new(r#"(?i)process[\s]*\.[\s]*start[\s]*\([\s]*@?["'](?:cmd|powershell|pwsh|bash|sh|/bin/|calc|mshta|rundll32|certutil|wscript|cscript|regsvr32|net|whoami)(?:\.exe)?["'\s]"#).unwrap(),
            // A short value, an optional closing quote (and brackets), then `;`, or a quote and
            // `.`, into code (a call or an assignment) that ends `);` and a comment swallowing
            // the rest of the line, `?>` or a string reopened: PHP or server-side JavaScript
            // code injection (`a;exit(md5(1));//`, `';d=new Date();..;//`, `');print(1);$a='`).
            // (A sentence's full stop is not a breakout: `Mr. Smith (VIP); #`.)
            // (`$0` only before a shell's option or input: `; $0 fees` is a price)
            var_shell: Regex::new(r#"(?i)(?:[;|&\n`]|\$\(|%0a)[\s"]*(?:\$(?:0|\{0\})"?(?:[\s]+-[ci](?:[\s]|$)|[\s]*<)|\$\{?(?:shell|bash)(?::-[^}\s]*)?\}?"?(?:[\s;|&`)<]|$)|%comspec%(?:[\s;|&`)/]|$))"#).unwrap(),
            // After a separator: a PowerShell cmdlet (`Verb-Noun`) with a parameter, a drive, `env:`
            // or nothing after it; `iex(`; a .NET static call; a script or program run from a
            // temporary folder; history and PATH tampering; `dd if=`; `alias x=cmd`. Anywhere: the
            // fork bomb, `New-Object` of a
            // socket or web client, ssh's and tar's options that run a command (argument
            // injection), find's `-exec` of a shell.
            shell_misc: Regex::new(concat!(
                r#"(?i)(?:[;|&\n`]|\$\(|%0a)[\s]*(?:"#,
                r#"(?:get|set|new|remove|stop|start|invoke|add|copy|move|out|write|import|export|enable|disable|clear|test|convertto|convertfrom|expand|compress|register|unregister|restart|rename|uninstall|install)-[a-z]{2,30}[\s]+(?:-[a-z]{2,}|[a-z]:[\\/]|env:)"#,
                r#"|(?:get-(?:process|childitem|content|service|localuser|localgroupmember|wmiobject|ciminstance|nettcpconnection|acl|credential|itemproperty|mppreference)|invoke-mimikatz|stop-process|remove-item)(?:[\s]*$|[\s]*[|;])"#,
                r#"|(?:iex|invoke-expression)[\s]*\(|\[system\.[\w.]+\]::\w+[\s]*\("#,
                r#"|(?:\.?/(?:tmp|dev/shm|var/tmp)/[\w-]+|\./[a-z_][\w-]*)(?:\.(?:sh|py|pl|elf|bin|run))?(?:[\s;|&`)]|$)"#,
                r#"|cmd(?:\.exe)?/[ck][\s]|(?:rd|rmdir)[\s]+/s[\s]+/q|query[\s]+(?:user|session|process)(?:[\s]*$|[\s]+/)|ssh[\s]+-[rldio][\s]|chmod[\s]+[ugoa]*\+[rwxst]*[sx][rwxst]*[\s]+/"#,
                r#"|(?:[a-z]:|\\\\[\w.-]+)\\(?:[^\\\s]+\\)*(?:nc|ncat|netcat|powershell|pwsh|cmd|mimikatz|psexec|procdump|rubeus|certutil|bitsadmin|mshta|rundll32|regsvr32|wscript|cscript)\.exe(?:[\s]|$)"#,
                r#"|(?-i:unset[\s]+HISTFILE|export[\s]+(?:PATH|LD_PRELOAD|HISTFILE|HISTSIZE|HISTFILESIZE)=)|dd[\s]+if=|alias[\s]+\w+=['"]?[a-z/]"#,
                r#")|:\(\)[\s]*\{[\s]*:[\s]*\|[\s]*:[\s]*&[\s]*\}[\s]*;[\s]*:|new-object[\s]+(?:-typename[\s]+)?(?:system\.net\.(?:sockets|webclient)|net\.webclient|system\.diagnostics)"#,
                r#"|(?:^|[\s'"])-o[\s]*['"]?proxycommand=|--checkpoint-action=exec=|--(?:upload-pack|use-compress-program|to-command)=|(?:^|[\s;])-exec[\s]+(?:/bin/)?(?:sh|bash|zsh|dash|nc|python\d?|perl)[\s]"#,
                r#"|(?:^|[\s])-e[\s]+(?:cmd(?:\.exe)?|/bin/(?:ba|z|da)?sh|powershell(?:\.exe)?)(?:[\s]|$)"#,
            ))
            .unwrap(),
            code_breakout: Regex::new(r#"^[\w @.-]{0,64}(?:['"]?[)\]]*;|['"]\.)\s*[A-Za-z_$][\w$.]*\s*[=(][^\n]*\)\s*(?:\.\s*['"])?;\s*(?:(?://|#)[^\n]{0,40}|/\*[^\n]{0,40}|\?>|\$\w+\s*=\s*['"])$"#).unwrap(),
        }
    })
}

/// Commands that are (almost) never words of ordinary text.
const VERY_STRONG: &[&str] = &[
    "whoami", "uname", "ifconfig", "ipconfig", "netstat", "systeminfo", "sysinfo", "wget", "curl", "netcat", "ncat", "powershell", "pwsh",
    "certutil", "bitsadmin", "nslookup", "tasklist", "taskkill", "wmic", "mshta", "rundll32", "regsvr32", "netsh", "phpinfo", "xterm", "socat",
    "busybox", "crontab", "mkfifo", "useradd", "vssadmin", "icacls", "schtasks", "cmd.exe", "powershell.exe",
];

/// A command word written as a name in prose: capitalised (`Python`, `Curl`, `PowerShell`) and
/// followed by a plain word (`& Python library`, `Curl like tool`). Not for the words Windows
/// runs whatever their case (`& Dir`, `& Net user`, `| Ver`, `&& Set`: cmd.exe ignores case), nor
/// with nothing after it, nor before an argument (`& Dir C:\`, `Nslookup abc.oast.fun`).
/// `follow` is the argument token as the caller read it (up to 12 characters): a token that
/// long may be cut, so it is not taken for a word.
fn capitalised_name(word: &str, follow: &str) -> bool {
    let w = word.as_bytes();
    let f = follow.trim();
    let lw = word.to_ascii_lowercase();
    let windows = matches!(
        lw.trim_end_matches(".exe"),
        "dir" | "ver" | "set" | "cmd" | "hostname" | "net" | "reg" | "sc" | "type" | "copy" | "del" | "tasklist" | "taskkill" | "whoami"
            | "ipconfig" | "systeminfo" | "netstat" | "nslookup" | "powershell" | "pwsh" | "certutil" | "bitsadmin" | "wmic" | "echo"
            | "start" | "call" | "move" | "find" | "findstr" | "more" | "attrib" | "icacls" | "schtasks" | "ping" | "timeout" | "id" | "ls" | "ps"
    );
    w.len() > 1
        && w[0].is_ascii_uppercase()
        && w[1..].iter().any(|c| c.is_ascii_lowercase())
        && !windows
        && (2..12).contains(&f.len())
        && f.bytes().all(|c| c.is_ascii_alphabetic())
}

fn judge_leading(word: &str, follow: &str) -> bool {
    let f = follow.trim_start();
    very_strong(word) && (f.is_empty() || is_argish(f) || f.starts_with("http") || f.chars().next().map(|c| c.is_ascii_lowercase()).unwrap_or(false))
}

fn is_argish(arg: &str) -> bool {
    let a = arg.trim_start_matches(|c: char| c.is_whitespace() || c == '\0');
    if a.is_empty() {
        return true;
    }
    let c = a.as_bytes()[0];
    if matches!(c, b'-' | b'/' | b'\\' | b'.' | b'$' | b'~' | b'"' | b'\'' | b'>' | b'<' | b'|' | b'&' | b';' | b'`' | b'%' | b'*') || c.is_ascii_digit() {
        return true;
    }
    let l = a.to_ascii_lowercase();
    if l.starts_with("http://") || l.starts_with("https://") || l.starts_with("ftp://") {
        return true;
    }
    if l.len() >= 3 && l.as_bytes()[1] == b':' && (l.as_bytes()[2] == b'\\' || l.as_bytes()[2] == b'/') {
        return true;
    }
    let word: String = l.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '.' || *c == '_').collect();
    strong(word.as_str())
        || word.contains(".php") || word.contains(".sh") || word.contains(".txt") || word.contains(".exe") || word.contains(".ini")
}

/// Where shell syntax last appears in a value (one pass, computed once per value): a pipe,
/// redirection, substitution, backslash or line break, an option (`-la`, not `-5`), a path
/// (`/etc/x`, `./x`, `~/x`; not `cancel/replace`), or a command word after a `;`. Text after a
/// command is prose only if nothing of this follows it.
struct ShellMarks {
    last: Option<usize>,
}

impl ShellMarks {
    fn of(text: &str) -> ShellMarks {
        let mut last = None;
        let b = text.as_bytes();
        for (i, &c) in b.iter().enumerate() {
            let word_start = i == 0 || b[i - 1].is_ascii_whitespace();
            let mark = matches!(c, b'|' | b'&' | b'`' | b'$' | b'<' | b'>' | b'\\' | b'\n' | b'\r')
                || (word_start && c == b'-' && b.get(i + 1).is_some_and(|n| !n.is_ascii_digit() && !n.is_ascii_whitespace())
                    // (not a dash of prose, `-- check fills`)
                    && !(b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_none_or(|n| n.is_ascii_whitespace())))
                || (word_start && (c == b'/' || text[i..].starts_with("./") || text[i..].starts_with("../") || text[i..].starts_with("~/")))
                || (c == b';' && {
                    let w: String = text[i + 1..].trim_start().chars().take_while(|c| c.is_ascii_alphanumeric()).collect::<String>().to_ascii_lowercase();
                    is_command(&w)
                });
            if mark {
                last = Some(i);
            }
        }
        ShellMarks { last }
    }
}

/// A command word whose argument is a number followed by prose: a note (`id 7 cancelled`,
/// `; sell 50 at close`), not a command line. `follow` is the matched argument, `from` the
/// offset in `text` after the match.
fn number_then_prose(marks: &ShellMarks, text: &str, follow: &str, from: usize) -> bool {
    // (`sleep 10;`: the argument's word ends with a separator, a command line)
    follow.trim_start().starts_with(|c: char| c.is_ascii_digit())
        && !follow.contains([';', '|', '&'])
        && prose_words(marks, text, from) > 0
}

/// How many ordinary words (three letters or more, not command names) follow the argument
/// matched at `from` (the rest of its word skipped, up to a `#` shell comment, in a bounded
/// window); 0 when shell syntax follows anywhere after it, or when a separator comes right after
/// the argument (`; sleep 10; please ignore`).
fn prose_words(marks: &ShellMarks, text: &str, from: usize) -> usize {
    if marks.last.is_some_and(|l| l >= from) {
        return 0;
    }
    let after = &text[from..];
    let mut end = after.len().min(256);
    while !after.is_char_boundary(end) {
        end -= 1;
    }
    let rest = after[..end].trim_start_matches(|c: char| !c.is_whitespace());
    if rest.trim_start().starts_with([';', '|', '&']) {
        return 0;
    }
    let rest = rest.split('#').next().unwrap_or("");
    rest.split(|c: char| c.is_whitespace() || matches!(c, ';' | ',' | '.' | '/' | ':' | '(' | ')' | '!' | '?'))
        .filter(|w| {
            let l = w.to_ascii_lowercase();
            l.len() >= 3 && l.bytes().all(|c| c.is_ascii_lowercase()) && !is_command(&l)
        })
        .count()
}

/// A value of `;`-separated note segments (`id 7; qty 100`, `ls 100;ps 3`, `time 10:00; date
/// 12/5`), with no other shell syntax: each segment is a note abbreviation with a bare number,
/// `time` or `date` with a time or date, or starts with a word that is no command.
fn note_segments(text: &str) -> bool {
    !text.contains(['|', '&', '`', '$', '\n', '\r', '<', '>', '\\'])
        && text.split(';').all(|seg| {
            let mut words = seg.split_whitespace();
            let Some(first) = words.next() else { return true };
            let lw = first.to_ascii_lowercase();
            // (a shell keyword or a command that runs the next word starts a command line:
            // `x;do ps aux;done`, `1;then ls;fi`, `1;command ls -la`)
            // (as typed, lower case, with a command after it: not `Do not chase`, `If breakout`)
            let keyword = matches!(first, "if" | "then" | "else" | "elif" | "do" | "while" | "until" | "!" | "{" | "command" | "builtin" | "nice" | "exec" | "nohup" | "sudo" | "env");
            if keyword && seg.split_whitespace().nth(1).is_some_and(|w| is_command(&w.to_ascii_lowercase())) {
                return false;
            }
            let mut arg = words.next().unwrap_or("");
            // (`cat # 2`, `host #1`: a number sign before the number)
            if arg == "#" {
                arg = words.next().unwrap_or("");
            }
            let arg = arg.trim_start_matches('#');
            let alone = words.next().is_none();
            let made_of = |ok: fn(u8) -> bool| arg.starts_with(|c: char| c.is_ascii_digit()) && arg.bytes().all(ok);
            if NOTE_ABBREVIATIONS.contains(&lw.as_str()) {
                alone && made_of(|c| c.is_ascii_digit() || c == b'.')
            } else if matches!(lw.as_str(), "time" | "date") {
                alone && made_of(|c| c.is_ascii_digit() || matches!(c, b':' | b'/' | b'-' | b'.'))
            } else {
                first.bytes().all(|c| c.is_ascii_alphanumeric() || c >= 0x80) && !is_command(&lw)
            }
        })
}

/// Whether `rest` holds a Windows command switch as a word of its own (`/ADD`, `/delete`,
/// `/domain`, `/f`): a slash, one to eight letters, then a space or the end (not `1/2`, `a/b`,
/// `/etc/x`).
fn windows_switch(rest: &str) -> bool {
    rest.split_whitespace().any(|w| {
        w.strip_prefix('/').is_some_and(|sw| (1..=8).contains(&sw.len()) && sw.bytes().all(|c| c.is_ascii_alphabetic()))
    })
}

fn push(out: &mut Vec<Hit>, rule: &'static str, weight: u8, start: usize, end: usize, text: &str) {
    if out.iter().any(|h| h.rule_id == rule) {
        return;
    }
    let ev: String = text.get(start..end).unwrap_or("").chars().take(40).collect();
    out.push(Hit { class: Class::Cmdi, rule_id: rule, weight, offset: start, length: (end - start).min(64), detail: format!("match={:?}", ev) });
}

/// The subcommand after a command word (`reg add ...`: `add`), lowercased, and whether it is a
/// whole word (a space or the end after it: not `reg add-on`).
fn subcommand(follow: &str) -> (String, bool) {
    let f = follow.trim_start().to_ascii_lowercase();
    let sub: String = f.chars().take_while(|c| c.is_ascii_alphabetic()).collect();
    let whole = f[sub.len()..].chars().next().is_none_or(|c| c.is_whitespace());
    (sub, whole)
}

fn judge_cmd(word: &str, follow: &str) -> Option<u8> {
    let w = word.to_ascii_lowercase();
    let w = w.trim_end_matches(".exe");
    if GUARDED.contains(&w) {
        // (typed as a shell needs it: lowercase; cmd.exe's `waitfor` in any case)
        // (PowerShell's aliases in any case too: `IEX (New-Object ...)`)
        return if !matches!(w, "waitfor" | "iex" | "iwr" | "irm") && word.bytes().any(|c| c.is_ascii_uppercase()) { None } else { guarded_command(w, follow) };
    }
    if strong(w) {
        // strong words: the rest must not be prose ("; ls" / "| id" / "&& whoami")
        let f = follow.trim_start_matches([' ', '\t', '\0']);
        // `ps aux`: BSD-style options without a dash
        if w == "ps" && ["aux", "axu", "ax", "auxf", "auxww", "ef"].contains(&f.split(|c: char| !c.is_ascii_alphabetic()).next().unwrap_or("").to_ascii_lowercase().as_str()) {
            return Some(85);
        }
        // (PowerShell's take an expression: `iex (iwr http://x/p.ps1)`, `iex(irm ...)`)
        let powershell = matches!(w, "invoke-expression" | "invoke-webrequest" | "invoke-restmethod" | "start-process" | "new-object");
        if f.is_empty() || is_argish(follow) || follow.starts_with("${") || powershell && f.starts_with(['(', '[']) || f.starts_with(|c: char| c.is_ascii_alphanumeric()) && (very_strong(w) || matches!(w, "nc" | "bash" | "cmd" | "sudo" | "perl" | "python" | "python3" | "php" | "ruby" | "telnet" | "wevtutil")) {
            return Some(85);
        }
        return None;
    }
    if w == "reg" {
        // (the subcommand as a whole word: not `reg add-on`)
        let (sub, whole) = subcommand(follow);
        if whole && ["add", "query", "delete", "save", "export", "import"].contains(&sub.as_str()) {
            return Some(80);
        }
    }
    if w == "net" {
        // `net user`, `net view`...: not `net 50` (a trading note)
        let (sub, _) = subcommand(follow);
        return matches!(sub.as_str(), "user" | "users" | "localgroup" | "group" | "view" | "share" | "start" | "stop" | "config" | "use" | "accounts" | "session" | "time")
            .then_some(80);
    }
    if weak(w) {
        let f = follow.trim_start().to_ascii_lowercase();
        // `sc stop|start|config|query <service>`: the service control subcommands.
        if w == "sc" {
            let (sub, whole) = subcommand(follow);
            if whole && ["stop", "start", "config", "query", "create", "delete"].contains(&sub.as_str()) {
                return Some(80);
            }
        }
        // `& start calc`, `| start powershell`: cmd.exe's `start` with a program that opens a
        // window or runs code (not `start small`, `start date`)
        if w == "start" {
            let (sub, whole) = subcommand(follow);
            if whole
                && matches!(
                    sub.as_str(),
                    "calc" | "notepad" | "mspaint" | "cmd" | "powershell" | "pwsh" | "mshta" | "rundll32" | "regsvr32" | "wscript" | "cscript" | "msiexec" | "certutil" | "bitsadmin" | "wmic" | "conhost"
                )
            {
                return Some(80);
            }
        }
        // `time 10:00`, `date 12/5`: a time or date in a note, not a command line
        if matches!(w, "time" | "date") && f.split(|c: char| !c.is_ascii_digit()).next().is_some_and(|d| (1..=2).contains(&d.len()))
            && f.as_bytes().get(f.split(|c: char| !c.is_ascii_digit()).next().unwrap_or("").len()).is_some_and(|c| matches!(c, b':' | b'/' | b'.'))
        {
            return None;
        }
        if is_argish(follow) && !follow.trim_start().starts_with('`') || follow.starts_with("${") {
            return Some(80);
        }
    }
    None
}

/// The longest command word a value's shell variables are joined into (longer is no command).
const MAX_WORD: usize = 24;

/// `word` made only of references to variables of `vars` (`$a$b`, `${a}${b}`), their values
/// joined; `None` if it holds anything else, names an unknown variable or joins to more than a
/// command name's length.
fn joined_references(word: &str, vars: &std::collections::HashMap<&str, String>) -> Option<String> {
    if !word.starts_with('$') {
        return None;
    }
    let mut joined = String::new();
    let mut rest = word;
    while let Some(r) = rest.strip_prefix('$') {
        let (name, after) = match r.strip_prefix('{') {
            Some(b) => b.split_once('}')?,
            None => {
                let n = r.bytes().take_while(|c| c.is_ascii_alphanumeric() || *c == b'_').count();
                (&r[..n], &r[n..])
            }
        };
        let v = vars.get(name)?;
        if joined.len() + v.len() > MAX_WORD {
            return None;
        }
        joined.push_str(v);
        rest = after;
    }
    rest.is_empty().then_some(joined)
}

/// A command word assembled from shell variables set before it in the value (`;a=i;b=d;$a$b`,
/// `;c=whoami;$c`, `;cmd=$'id';$cmd`, `;a=i b=d;"$a$b"`): the span of the statement that runs it,
/// when the variables' values joined make a command name. Bounded: a few dozen variables, a
/// joined word no longer than a command name.
fn assembled_command(text: &str) -> Option<(usize, usize)> {
    const MAX_VARS: usize = 32;
    let valid_name = |n: &str| !n.is_empty() && n.len() <= 32 && n.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') && !n.as_bytes()[0].is_ascii_digit();
    let mut vars: std::collections::HashMap<&str, String> = std::collections::HashMap::new();
    let mut pos = 0;
    for seg in text.split([';', '&', '|', '\n']) {
        let start = pos;
        pos += seg.len() + 1;
        let t = seg.trim();
        // `a=i b=d`: assignments, each a word
        let assignments: Vec<(&str, &str)> = t.split_whitespace().map_while(|w| w.split_once('=').filter(|(n, _)| valid_name(n))).collect();
        if !assignments.is_empty() && assignments.len() == t.split_whitespace().count() {
            for (name, value) in assignments {
                if vars.len() < MAX_VARS || vars.contains_key(name) {
                    let v = value.trim_matches(['\'', '"']);
                    // (`c=$a$b`: a value made of references to variables set before)
                    let v = match joined_references(v, &vars) {
                        Some(j) => j,
                        None => v.trim_start_matches('$').trim_matches(['\'', '"']).chars().take(MAX_WORD + 1).collect(),
                    };
                    vars.insert(name, v);
                }
            }
            continue;
        }
        let word = t.split_whitespace().next().unwrap_or("").trim_matches('"');
        if !word.starts_with('$') || vars.is_empty() {
            continue;
        }
        if joined_references(word, &vars).is_some_and(|joined| is_command(&joined.to_ascii_lowercase())) {
            let lead = seg.len() - seg.trim_start().len();
            return Some((start + lead, start + lead + t.len()));
        }
    }
    None
}

pub fn scan(text: &str, seen: &Seen, out: &mut Vec<Hit>) {
    let r = rx();
    let marks: std::cell::OnceCell<ShellMarks> = std::cell::OnceCell::new();
    // (whether the whole value is note segments: computed once, for every match that asks)
    let notes: std::cell::OnceCell<bool> = std::cell::OnceCell::new();
    let b = text.as_bytes();
    let has_sep = seen.any(b";|&\n\r`$'\"");
    if has_sep {
        // Each match is resumed after its command word, not after the argument it matched: the
        // argument may hold the next separator and command (`\nexit\n\x1b[2Acurl ...`).
        let mut from = 0;
        while let Some(caps) = r.sep_cmd.captures_at(text, from) {
            let m = caps.get(0).unwrap();
            let word = caps.get(1).map(|x| x.as_str()).unwrap_or("");
            let follow = caps.get(2).map(|x| x.as_str()).unwrap_or("");
            let word_end = caps.get(1).map_or(m.end(), |w| w.end());
            from = word_end.max(m.start() + 1);
            let lw = word.to_ascii_lowercase();
            let quote_sep = matches!(m.as_str().as_bytes()[0], b'\'' | b'"');
            if (quote_sep || capitalised_name(word, follow)) && !very_strong(&lw) {
                continue;
            }
            // `&copy;`, `&reg;`: HTML entities, not a background job (cmd.exe reads `;` as a
            // space: `x&reg;add HKCU\...` runs `reg add`, so only with no word after the `;`)
            if matches!(lw.as_str(), "copy" | "reg") && m.as_str().starts_with('&') && text[m.start() + 1..].starts_with(word) && {
                let after = &text[m.start() + 1 + word.len()..];
                after.starts_with(';') && !after[1..].starts_with(|c: char| c.is_alphanumeric() || c == '\\' || c == '"' || c == '\'')
            } {
                continue;
            }
            // `Tool & python package for ...`: an interpreter before a plain word and more words
            // names a language (a script is a file: `; python x.py`; `; python x` or `| php
            // shell` alone still run one). The whole next token is read, not the 12 characters
            // `follow` holds.
            if matches!(lw.as_str(), "perl" | "python" | "python3" | "php" | "ruby") && {
                let rest = text[word_end..].trim_start_matches([' ', '\t']);
                let token: &str = rest.split(char::is_whitespace).next().unwrap_or("");
                let after = rest[token.len()..].trim_start_matches([' ', '\t']);
                token.len() >= 2 && token.bytes().all(|c| c.is_ascii_alphabetic()) && after.starts_with(|c: char| c.is_ascii_alphabetic())
                    && after.bytes().all(|c| c.is_ascii_alphanumeric() || matches!(c, b' ' | b',' | b'.' | b'\'' | b'(' | b')' | b'-'))
            } {
                continue;
            }
            if !strong(lw.trim_end_matches(".exe")) && number_then_prose(marks.get_or_init(|| ShellMarks::of(text)), text, follow, m.end()) {
                continue;
            }
            // `take profit & exit`: a lone `&` between words, then a common word ending the
            // value, is prose (`x & exit` starts nothing worth running in the background)
            // (prose before it: two words or more, the last one a word; `8.8.8.8 & set` counts)
            let lone_amp = m.as_str().starts_with('&') && !m.as_str().starts_with("&&") && text[..m.start()].ends_with(' ');
            // (The words before are looked at only then: never for every match of a long value.)
            let prose_before = || {
                let mut before = text[..m.start()].split_whitespace().rev();
                // (a word, with inner hyphens and a comma or stop after it: `standards, & more`)
                before.next().is_some_and(|w| {
                    let w = w.trim_end_matches([',', '.', ':']);
                    !w.is_empty() && w.chars().all(|c| c.is_alphabetic() || c == '-') && !w.starts_with('-')
                }) && before.next().is_some()
            };
            if lone_amp && !strong(&lw) && follow.trim().is_empty() && prose_before() {
                continue;
            }
            // `ID 7; ps 3`: a short command name that is also a note's abbreviation (position
            // size, id, lot size...), with a bare number as its whole argument, ending the
            // value: a note (`ps 3` or `id 7` run nothing an attacker wants).
            let bare_number = |f: &str| {
                let f = f.trim_start_matches([' ', '\t']);
                (1..=6).contains(&f.len())
                    && f.starts_with(|c: char| c.is_ascii_digit())
                    && f.bytes().all(|c| c.is_ascii_digit() || c == b'.')
                    && f.bytes().filter(|&c| c == b'.').count() <= 1
            };
            if NOTE_ABBREVIATIONS.contains(&lw.as_str())
                && (bare_number(follow) && text[m.end()..].trim().is_empty()
                    // `if ps > 500 cut half`: a comparison
                    || matches!(follow.trim(), ">" | "<" | ">=" | "<=") && text[m.end()..].trim_start().starts_with(|c: char| c.is_ascii_digit())
                    // `; ID 5521;`: a label in capitals
                    || word.bytes().all(|c| c.is_ascii_uppercase()) && follow.trim_start().starts_with(|c: char| c.is_ascii_digit())
                    || *notes.get_or_init(|| note_segments(text))
                    // `AAPL | id 4521 | filled`: a cell of a table row, a number between pipes
                    // with a word after them
                    || m.as_str().starts_with('|') && bare_number(follow) && {
                        let after = text[m.end()..].trim_start_matches([' ', '\t']);
                        after.strip_prefix('|').is_some_and(|a| {
                            let w: String = a.trim_start().chars().take_while(|c| c.is_ascii_alphabetic()).collect::<String>().to_ascii_lowercase();
                            w.len() >= 3 && !is_command(&w)
                        })
                    }
                    // `then id 77 closed`, `; cat 2 bonds`: a number, then words (not a file name:
                    // `;cat 1 index.php` prints it)
                    || number_then_prose(marks.get_or_init(|| ShellMarks::of(text)), text, follow, m.end())
                        && !text[m.end()..].split_whitespace().any(|w| w.split_once('.').is_some_and(|(a, b)| !a.is_empty() && b.starts_with(|c: char| c.is_ascii_alphabetic()))))
            {
                continue;
            }
            // `w` (who is logged on) only as itself, lowercase, after a separator that is not a
            // `&` inside a word (`10LSI55a&W`, `w&W&7Wj`: random passwords)
            if lw == "w" && (word == "W" || m.as_str().starts_with('&') && !m.as_str().starts_with("&&") && text[..m.start()].ends_with(|c: char| c.is_ascii_alphanumeric())) {
                continue;
            }
            // `;id#`, `'; id #`, `|id #-`: a shell comment after a command word typed as a shell
            // needs it (lowercase: `ID #`, `Cat#12`, `CC # on file` are number signs).
            // (`#` ending the value, or with only punctuation after it: `# -`; not `# 3`, `#12`,
            // `#s to follow`, `#: 4471`, `#trading`)
            let after_hash = text[m.start() + m.as_str().find('#').map_or(m.len(), |p| p + 1)..].trim();
            // (or with any comment, when a `;` opens the value or follows one token without
            // letters, a number or a closed quote: `; id # CVE-2026-1234`, `1;id #x`; not `Note; id
            // #12 closed`, `; id # primary key` (a comment in words, an INI file's), `1;ps #3
            // position size` (a number sign), `| id # | side |` (a table))
            let opens_value = || {
                let before = text[..m.start()].trim();
                let words = after_hash.split(|c: char| !c.is_ascii_alphabetic()).filter(|w| w.len() >= 3 && w.bytes().all(|c| c.is_ascii_lowercase())).count();
                m.as_str().starts_with(';')
                    && !before.contains(char::is_whitespace)
                    && !before.bytes().any(|c| c.is_ascii_alphabetic())
                    && !after_hash.starts_with(|c: char| c.is_ascii_digit())
                    && words < 2
            };
            let comment = follow.trim().starts_with('#')
                && strong(&lw)
                && word.bytes().all(|c| !c.is_ascii_uppercase())
                && (after_hash.is_empty() || !after_hash.contains(char::is_whitespace) && after_hash.bytes().all(|c| matches!(c, b'-' | b'+' | b'!' | b'*' | b'/')) || opens_value());
            if comment {
                push(out, "cmdi.separator_command", 85, m.start(), m.end(), text);
                break;
            }
            // The guarded words and `dig` count after `;`, `|`, `&` or `$(` only: a backtick or a
            // line feed before them is mostly markdown or a file's next line (`` `java -jar app.jar` ``).
            let code_sep = !m.as_str().starts_with(['`', '\n', '\r', '%']);
            if GUARDED.contains(&lw.as_str()) && !code_sep {
                continue;
            }
            if let Some(w) = judge_cmd(word, follow) {
                push(out, "cmdi.separator_command", w, m.start(), m.end(), text);
                break;
            }
            // `;dig evil.com`, `| dig @8.8.8.8 x`: a lookup of a host name, lowercase (the whole
            // next token read: `follow` holds at most 12 characters)
            if word == "dig" && code_sep && {
                let rest = text[word_end..].trim_start_matches([' ', '\t']);
                let token = rest.split(|c: char| c.is_whitespace() || matches!(c, ';' | '|' | '&' | '`')).next().unwrap_or("");
                rest.len() < text.len() - word_end && (host_name(token.trim_end_matches('.')) || token.len() > 1 && token.starts_with(['@', '+']))
            } {
                push(out, "cmdi.separator_command", 85, m.start(), m.end(), text);
                break;
            }
        }
        if let Some(m) = if (seen.has(b'$') && seen.has(b'(')) || seen.has(b'`') { r.subst.find(text) } else { None } {
            // the substituted text must start with a command word
            let inner = m.as_str().trim_start_matches(['$', '(', '`', ' ']);
            let word: String = inner.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '/' || *c == '_' || *c == '.' || *c == '\\').collect();
            let base = word.rsplit(['/', '\\']).next().unwrap_or("");
            let rest = &inner[word.len().min(inner.len())..];
            // `$(word)` runs word, except in a makefile's syntax: an upper-case variable alone
            // (`$(VER)`, `$(DEB_HOST_MULTIARCH)`; not `$(IEX(iwr ...))`) or a make function
            // (`$(filter ..)`, `$(if)`)
            let make_var = !word.is_empty() && word.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_') && rest.trim_start().starts_with(')');
            let make_fn = matches!(
                word.as_str(),
                "filter" | "filter-out" | "findstring" | "strip" | "if" | "or" | "and" | "subst" | "patsubst" | "wildcard" | "foreach"
                    | "words" | "word" | "firstword" | "lastword" | "notdir" | "suffix" | "basename" | "addprefix" | "addsuffix"
                    | "realpath" | "abspath" | "origin" | "flavor" | "warning" | "info" | "value" | "sort" | "dir" | "join" | "call"
            ) && !strong(&word) && !weak(&word);
            // (nor jQuery, `$(this).val()`: a method called on what it returns)
            let jquery = m.as_str().starts_with("$(") && text[m.end()..].starts_with('.');
            let runs = !(make_var || make_fn && m.as_str().starts_with("$(") || jquery);
            // (a guarded word in backticks is markdown: `` `java -jar app.jar` ``)
            let markdown = m.as_str().starts_with('`') && GUARDED.contains(&base.to_ascii_lowercase().as_str());
            if !markdown && judge_cmd(base, rest.trim_end_matches([')', '`'])).is_some() || m.as_str().starts_with("$(") && base.len() > 1 && runs {
                push(out, "cmdi.substitution", 85, m.start(), m.end(), text);
            }
        }
        // The shell itself as the command, named by a variable (`;$0 -c id`, `;${SHELL} -c id`,
        // `&%COMSPEC% /c whoami`)
        if let Some(m) = if seen.has(b'$') || seen.has(b'%') { r.var_shell.find(text) } else { None } {
            push(out, "cmdi.separator_command", 85, m.start(), m.end(), text);
        }
        if seen.has(b'$') {
            if let Some(m) = r.ifs.find(text) {
                push(out, "cmdi.ifs_evasion", 85, m.start(), m.end(), text);
            }
            // (spelling a word or a path: not `IFS=$'\012\011'`, `sep=$'\x1f'`)
            if let Some(m) = if seen.has(b'\\') { r.ansi_c.find_iter(text).find(|m| ansi_c_word(m.as_str())) } else { None } {
                push(out, "cmdi.ifs_evasion", 85, m.start(), m.end(), text);
            }
        }
        // (the rest empty or an argument: `{id,}`, `{cat,/etc/passwd}`, `{ls,-la}`; not a field
        // list, `{id,name,email}`)
        if let Some(caps) = if seen.has(b'{') { r.brace.captures(text) } else { None } {
            let (m, first) = (caps.get(0).unwrap(), caps.get(1).map_or("", |w| w.as_str()));
            let rest = caps.get(2).map_or("", |w| w.as_str());
            let base = first.rsplit('/').next().unwrap_or("");
            let argument = rest.split(',').all(|a| a.is_empty() || a.starts_with(['/', '-', '.', '~', '$']) || a.contains('/'));
            if first.bytes().all(|c| !c.is_ascii_uppercase()) && is_command(base) && argument {
                push(out, "cmdi.ifs_evasion", 85, m.start(), m.end(), text);
            }
        }
    }
    if let Some(m) = if has_sep || seen.has(b'-') { r.shell_misc.find(text) } else { None } {
        push(out, "cmdi.separator_command", 85, m.start(), m.end(), text);
    }
    if let Some((start, end)) = if has_sep && seen.has(b'=') && seen.has(b'$') { assembled_command(text) } else { None } {
        push(out, "cmdi.separator_command", 85, start, end, text);
    }
    if seen.has(b'(') || seen.has(b'$') {
        if let Some(m) = r.code_exec.find(text) {
            push(out, "cmdi.code_exec", 80, m.start(), m.end(), text);
        }
        if let Some(m) = if seen.has(b'(') && seen.has(b';') { r.code_breakout.find(text) } else { None } {
            push(out, "cmdi.code_breakout", 80, m.start(), m.end(), text);
        }
    }
    if let Some(m) = if seen.has(b'|') && seen.has(b'!') || seen.ci(b, b"dde") { r.dde.find(text) } else { None } {
        push(out, "cmdi.code_exec", 85, m.start(), m.end(), text);
    }
    if let Some(m) = if seen.has(b'(') && seen.ci(b, b"start") { r.process_start.find(text) } else { None } {
        push(out, "cmdi.code_exec", 80, m.start(), m.end(), text);
    }
    // only separators: "; ", "| ", "&& ", "%0a", "`"
    let t = text.trim_matches(|c: char| c == ' ' || c == '\t');
    if !t.is_empty() && t.len() <= 4 && t.bytes().all(|c| matches!(c, b';' | b'|' | b'&' | b'\n' | b'\r')) {
        out.push(Hit { class: Class::Cmdi, rule_id: "cmdi.separator_probe", weight: 50, offset: 0, length: text.len(), detail: "separator only".into() });
    }
    // a bare reconnaissance command as the whole value
    let lw = t.to_ascii_lowercase();
    let first = lw.split_whitespace().next().unwrap_or("");
    // (not a sentence about the command: `wget of the EOD file failed at 6:05am`, `whoami on the
    // server returns 'trader'`; three ordinary words and no shell syntax after it)
    if very_strong(first)
        && (if lw == first {
            first != "curl"
        } else {
            judge_leading(first, &t[first.len()..])
                && !capitalised_name(&t[..first.len()], t[first.len()..].split_whitespace().next().unwrap_or(""))
                // (Windows tools take words as subcommands: `netsh firewall set opmode disable`)
                && (matches!(first, "netsh" | "wmic" | "bitsadmin" | "schtasks" | "vssadmin") || prose_words(&ShellMarks::of(t), t, first.len()) < 3)
        })
    {
        push(out, "cmdi.leading_command", 60, 0, text.len(), text);
    }
    // leading command: only when the first word (last path component) is a command name
    let first_tok = text.trim_start_matches(|c: char| c.is_whitespace() || c == '"' || c == '\'').split(|c: char| c.is_whitespace() || c == '$').next().unwrap_or("");
    let first_word = first_tok.rsplit(['/', '\\']).next().unwrap_or("").to_ascii_lowercase();
    let first_word = first_word.trim_end_matches(".exe");
    let lead_possible = is_command(first_word);
    if let Some(caps) = if lead_possible { r.start_cmd.captures(text) } else { None } {
        let m = caps.get(0).unwrap();
        let word = caps.get(1).map(|x| x.as_str()).unwrap_or("");
        let follow = caps.get(2).map(|x| x.as_str()).unwrap_or("");
        let lw = word.to_ascii_lowercase();
        // `net user`, `sc stop` alone read as words; with a Windows switch after them
        // (`net user hacker Password1 /ADD`) they are a command line.
        // (`net view:`, `net user,`: the word with its punctuation)
        let english = matches!(follow.trim().trim_end_matches([':', ',', '.', ';', '!', '?']).to_ascii_lowercase().as_str(), "user" | "users" | "view" | "share" | "start" | "stop" | "config")
            && !windows_switch(&text[m.end()..]);
        // (`net localgroup ...`, `sc stop ...`, `reg add ...`: their subcommands are the argument;
        // `reg` and `sc` only with something Windows after them, a backslash, a registry hive or a
        // switch: `reg add 5 lots`, `sc query 5 lots` are notes)
        let rest = &text[m.end()..];
        let windows_after = || rest.contains('\\') || windows_switch(rest) || rest.split_whitespace().any(|w| {
            // a registry hive: HKEY_..., HKLM, HKCU, HKCR, HKU (not HKD, a currency)
            w.get(..4).is_some_and(|h| h.eq_ignore_ascii_case("hkey")) || w.get(..3).is_some_and(|h| ["hkl", "hkc", "hku"].iter().any(|k| h.eq_ignore_ascii_case(k)))
        });
        let argument = is_argish(follow)
            || lw == "net" && judge_cmd(&lw, follow).is_some()
            || matches!(lw.as_str(), "sc" | "reg") && judge_cmd(&lw, follow).is_some() && windows_after();
        if word.bytes().all(|c| !c.is_ascii_uppercase()) && (strong(&lw) || weak(&lw)) && argument && !english
            // `id 7 cancelled`, `head & shoulders forming on the daily`: a note
            && !({
                let marks = marks.get_or_init(|| ShellMarks::of(text));
                number_then_prose(marks, text, follow, m.end()) || prose_words(marks, text, m.end()) >= 3
            })
            && !*notes.get_or_init(|| note_segments(text))
        {
            push(out, "cmdi.leading_command", 55, m.start(), m.end(), text);
        }
    }
    if seen.any(b"?*[") && seen.has(b'/') {
        if let Some(m) = r.glob_path.find_iter(text).find(|m| {
            let cmd = m.as_str().trim_start_matches(|c: char| !c.is_ascii_alphanumeric() && c != '/' && c != '?' && c != '*');
            // the wildcard is in the command's own path (not only in an argument)
            cmd.split_whitespace().next().is_some_and(|p| p.contains(['?', '*', '[']))
        }) {
            push(out, "cmdi.glob_path", 85, m.start(), m.end(), text);
        }
    }
    // `$((12+34))`: shell arithmetic expansion, the probe commix echoes back to see whether its
    // command ran (never in a note: `$((` is shell syntax only)
    // (and bash's older `$[12+34]`: only two integers joined by + * / %, not a jsonpath
    // `$[last-1]` or a price range `$[120-125]`)
    for (open, close) in [("$((", "))"), ("$[", "]")] {
        if let Some(p) = if seen.has(b'$') { text.find(open) } else { None } {
            let body = &text[p + open.len()..];
            let inner = body.split(close).next().unwrap_or("");
            let two_integers = || {
                let mut parts = inner.split(['+', '*', '/', '%']).map(str::trim);
                matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if [a, b].iter().all(|x| !x.is_empty() && x.bytes().all(|c| c.is_ascii_digit())))
            };
            let arithmetic = if open == "$[" {
                two_integers()
            } else {
                inner.bytes().any(|c| c.is_ascii_digit()) && inner.bytes().any(|c| matches!(c, b'+' | b'-' | b'*' | b'/' | b'%'))
            };
            if body.contains(close) && inner.len() <= 40 && arithmetic {
                push(out, "cmdi.arithmetic_probe", 80, p, p + open.len() + inner.len() + close.len(), text);
            }
        }
    }
    if let Some(m) = if seen.has(b'$') && seen.has(b'{') { r.jndi.find(text) } else { None } {
        push(out, "cmdi.jndi_lookup", 90, m.start(), m.end(), text);
    }
    if let Some(m) = if seen.has(b'(') && seen.has(b'{') { r.shellshock.find(text) } else { None } {
        push(out, "cmdi.shellshock", 95, m.start(), m.end(), text);
    }
    if seen.has(b'<') {
        if let Some(m) = r.ssi.find(text) {
            push(out, "cmdi.ssi", 95, m.start(), m.end(), text);
        }
    }
    if let Some(m) = if seen.has(b'{') || (seen.has(b'<') && seen.ci(b, b"<%")) || seen.ci(b, b"freemarker") || seen.ci(b, b"?new(") { r.template.find(text) } else { None } {
        push(out, "cmdi.template_injection", 70, m.start(), m.end(), text);
    }
}
