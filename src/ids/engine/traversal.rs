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
    remote_include: Regex,
    metadata: Regex,
    dotdot_encoded: Regex,
    lfi_path: Regex,
    filter_chain: Regex,
}

fn rx() -> &'static Rx {
    static R: OnceLock<Rx> = OnceLock::new();
    R.get_or_init(|| Rx {
        dotdot: Regex::new(r#"(?:^|[/\\=:'"\s;,|&(\x00*?]|\.\.)\.{2,}[\x00]*(?:[/\\]|;/)(?:[^\s]|$)"#).unwrap(),
        dotdot_weird: Regex::new(r"(?i)\.\.(?:2f|5c)(?:\.\.|etc|boot|windows|winnt)|(?:^|[=/])(?:Li4vLi4v|Ly4uLy4u|Li5cLi5c|Li4vLi4|Li8uLi8u)|\.\.(?:0x2f|0x5c|%2f|%5c|/%2e|\?|%u[0-9a-f]{4}|%(?:25|c0|c1|e0|f0)|[\x{E000}-\x{F8FF}])|0x2e0x2e|(?:\.[/\\]){3,}|\.(?:/\\|\\/)|(?:^|[/\\])\.\.$").unwrap(),
        sensitive: Regex::new(r"(?i)(?:^|[/\\:=\s'\x22]|\.\.)(?:(?:var[/\\])?run[/\\]secrets[/\\](?:kubernetes\.io|eks\.amazonaws\.com)[/\\]|etc[/\\](?:passwd|shadow|group|hosts|issue|motd|master\.passwd|sudoers|crontab|ssh/|mysql/|apache2?/|httpd/|nginx/|php\.ini|fstab|resolv\.conf|security/)|proc[/\\](?:self|\d+)[/\\]|var[/\\](?:log|www|mail|spool|lib/mysql)[/\\]|root[/\\]|\.ssh[/\\]|id_[rd]sa|\.bash_history|\.htpasswd|\.htaccess|web\.config|wp-config\.php|boot\.ini|win\.ini|system\.ini|windows[/\\]system32|winnt[/\\]|system32[/\\](?:config|drivers)|inetpub[/\\]|global\.asax?|config\.sys|autoexec\.bat|desktop\.ini|sam$|repair[/\\]sam)").unwrap(),
        nul_ext: Regex::new(r"(?i)\.[a-z0-9]{1,6}\x00|\x00\.?[a-z0-9]{1,6}$|\x00[/\\]").unwrap(),
        file_url: Regex::new(r"(?i)(?-u:\b)file:(?://|\\\\)").unwrap(),
        web_inf: Regex::new(r"(?i)web-inf[/\\]").unwrap(),
        // PHP stream wrappers that read or run files (php://filter chains; php://input and the
        // others, expect://, phar://, zip://a#b, compress.zlib://, glob://, rar:// as a value, not
        // named in prose), and a data: URL whose base64 opens with `<?php` or `<?=` (not `<?xml`).
        wrapper: Regex::new(r#"(?i)(?-u:\b)php://filter|(?:^|[=(:'"])[\s\x00]*(?:php://(?:input|expect|fd|memory|temp|stdin)|expect://\S|phar://\S|zip://[^\s#]+(?:#|%23)\S|compress\.(?:zlib|bzip2)://\S|glob://\S|rar://\S|gopher://\S|dict://\S)|(?-u:\b)data:[^,\s]{0,40};base64,(?:PD9waHA|PD89)"#).unwrap(),
        etc_probe: Regex::new(r#"(?i)(?:^|[\s=:'"(.\x00])/etc/(?:services|hostname|os-release|environment|machine-id)(?-u:\b)"#).unwrap(),
        // An NTFS alternate data stream named on a file (`index.php::$DATA` reads its source;
        // not a PHP static property, `self::$data`).
        // A dot-dot segment in the encodings dotdotpwn and the IIS-era bypasses use, before another
        // one or a system folder: dots as `%2e`, `%252e`, overlong `%c0%ae` (and the forms with
        // bits IIS ignored, `%c0%ee`, `%c0%6e`), `%e0%80%ae` up to six bytes, `%uff0e`, `0x2e`;
        // `.?`/`?.` wildcards; a NUL or `%01` between or after them; slashes as `%2f`, `%5c`,
        // overlong and lax-hex `%c0%af`, `%c0%9v`, `%c0%qf`, `%c1%1c`, `%c1%9c`, `%c1%8s`, `%c1%pc`,
        // `%bg%qf`, `%f8%80%80%80%af`, `%uefc8`, `%uf025`, `0x2f`, `%%32%%66`.
        dotdot_encoded: {
            let dot = r"(?:\.|%(?:25)*2e|%(?:25)*c0(?:%(?:25)*(?:2e|ae|ee|fe|6e|5e)|\.)|%(?:25)*(?:e0|f0%80|f8%80%80|fc%80%80%80)%80%ae|%u(?:ff0e|002e)|0x2e|%%32%%65)";
            let nul = r"(?:%0[01]|\x00)?";
            let dotdot = format!(r"(?:{dot}{nul}{dot}|\.\?|\?\.|\?\?){nul}");
            let slash = r"(?:[/\\]|%(?:25)*(?:2f|5c)|%(?:25)*c0%(?:25)*(?:af|2f|5c|9v|qf)|%(?:25)*c1%(?:25)*(?:1c|9c|af|8s|pc)|%bg%qf|%(?:e0|f0%80|f8%80%80|fc%80%80%80)%80%(?:af|2f)|%u(?:2215|2216|efc8|f025)|0x(?:2f|5c)|%%32%%66|%%35%%63)";
            Regex::new(&format!(r"(?i){dotdot}{slash}(?:%25)?(?:{dotdot}|etc|boot\.ini|windows|winnt|system32|inetpub|proc)")).unwrap()
        },
        // A value that is only a path (see `path_value`) to a file that local file inclusion
        // reads, in the layouts where it lives (anchored at the root: `/opt/app/etc/oms.yaml`,
        // `/var/log/tradeguard/eod.log`, `/srv/php/app/index.php` are an application's own):
        // the system's files under `/etc` and `/proc`, its logs and run files
        // (`/var/log/messages`, `/var/log/apache2/access.log`, `/var/run/utmp`), a web server's
        // or its stack's configuration, logs and sessions in their install folders
        // (`/usr/local/apache2/conf/httpd.conf`, `/opt/lampp/logs/error_log`, `C:\xampp\...`,
        // `C:/program files/mysql/mysql server 5.0/my.ini`), PHP session files, shells' and
        // clients' files in a home folder (`~/.pgpass`, `/root/.bash_history`), Windows setup
        // and profile files.
        lfi_path: Regex::new(concat!(
            r"(?i)^(?:",
            // /etc: the files and folders inclusion lists read
            r"/etc/(?:passwd|shadow|group|gshadow|hosts|hostname|issue(?:\.net)?|motd|master\.passwd|sudoers|crontab|anacrontab|fstab|mtab|resolv\.conf|inittab|inetd\.conf|xinetd|exports|aliases|shells|login\.defs|bashrc|profile|environment|os-release|lsb-release|redhat-release|debian_version|ssh/|mysql/|my\.cnf|apache\d*/|httpd/|nginx/|lighttpd/|php[\d.]*/|php\.ini|security/|pam\.d/|ssl/private/|postfix/|logrotate\.d/(?:proftpd|pure-?ftpd|vsftpd|apache\d*|httpd|nginx)|wu-ftpd/|pure-?ftpd|proftpd|vsftpd|ftp(?:hosts|users|access)|samba/|ldap/|named\.conf|network/|sysconfig/|opt/ipf|ipnat|modules|default/|init\.d/|rc\.d/|skel/|rpc$|vfstab|release$|mail/|php\.d/|proftpd?\.conf|nginx\.conf|https?d?/conf|httpd\.conf|syslog\.conf|rsyslog\.conf|sysctl\.conf|pki/tls/private/|letsencrypt/(?:live|archive)/[^/]+/privkey)",
            // /proc
            r"|/proc/(?:self|\d+|version|cmdline|mounts|net/|sched_debug|cpuinfo|meminfo|stat|loadavg|partitions|devices|modules|interrupts|filesystems|swaps|kcore|config\.gz)",
            // /var: system logs (by name or by the service's folder), run, mail and PHP sessions
            r"|/(?:private/)?var/(?:log|adm)/(?:messages|syslog|secure|auth\.log|kern\.log|daemon\.log|user\.log|maillog|mail\.(?:log|err|info|warn)|boot\.log|dmesg|lastlog|wtmp|btmp|utmp|faillog|xferlog|cron|yum\.log|dpkg\.log|sudo\.log|vsftpd\.log|sshd\.log|httpd-(?:access|error)\.log|(?:access|error)[_.]log|(?:apache\d*|httpd|httpsd|nginx|lighttpd|mysql|mysqld|mariadb|postgresql|pgsql|proftpd|pure-?ftpd|ftp-proxy|ftplog|news|samba|squid|audit|exim\d*|postfix|qmail|smtpd|poplog|authlog|message|appstore|lp|ras)(?:[/._-]|$)|$)",
            r"|/var/(?:run/(?:utmp|[\w-]+\.pid|secrets/)|db/shadow|mail/root|spool/(?:mail/root|cron/crontabs)|lib/php\d*/(?:sessions?/)?sess_|www/(?:[^/]+/)*?(?:logs?|conf)/|(?:mysql|mysqld|httpd|apache\d*|nginx)\.log$|(?:apache\d*|cpanel)/|adm$)|/tmp/sess_|/usr/spool/mqueue/",
            // web servers and their stacks in their install folders
            r"|/(?:usr/local/|usr/|opt/(?:bitnami/)?)?(?:apache[\d.]*|apache2|httpd|nginx|lampp|xampp|lamp|cpanel|lighttpd|www|logs?)/(?:[^/]+/)*?(?:conf/|logs?/|htdocs/|bin/apachectl|[^/]*(?:\.conf|_log|ftpd[^/]*\.log|(?:access|error)\.log)$)",
            r"|/usr/local/(?:etc/(?:apache\d*|nginx|php\d*|pure-?ftpd)|apps/apache|pureftpd/|apache\d*/log)|/usr/(?:local/)?lib/php\.ini|/bin/php\.ini|/usr/lib/security/|/usr/(?:ports|pkgsrc)/(?:ftp|net|contrib)/pure",
            // PHP's configuration in a PHP folder, anywhere (`/Volumes/x/usr/local/php/lib/php.ini`)
            r"|.*?[/\\]php[\d.]*[/\\](?:[^/\\]+[/\\])*?(?:php\.ini|httpd\.conf(?:\.php)?)$",
            // a Windows server stack written from the root of the current drive (`\xampp\php\php.ini`,
            // `/Program Files\Apache Group\Apache\conf\httpd.conf`, `/WINDOWS\php.ini`)
            r"|[/\\](?:(?:program ?files(?: \(x86\))?|progra~\d)[/\\])?(?:xampp|apache[\w .~]*|wamp\d*|appserv|php\d*|mysql[\w .]*|windows|winnt)[/\\](?:[^/\\]+[/\\])*?[^/\\]*\.(?:conf|log|ini|cnf|err|inc|php)$",
            r"|/library/webserver/|/applications/mamp/",
            // a home folder's shell, client and cloud credentials
            r"|(?:~[a-z_][\w-]*|~|/root|/home/[^/]+|/users/[^/]+)/\.(?:bash_history|zsh_history|psql_history|pgpass|mysql_history|viminfo|netrc|rhosts|ssh/|aws/credentials|kube/config|git-credentials|docker/config\.json|gnupg/)|/root/\.(?:bashrc|bash_profile|profile)$",
            r"|/\.(?:rhosts|shosts|netrc|cshrc|bashrc|bash_profile|profile|pgpass)$",
            // Windows: server stacks, setup files, the system folder's logs and configuration
            r"|[a-z]:[/\\](?:(?:program ?files(?: \(x86\))?|progra~\d)[/\\])?(?:xampp|apache[\w .~]*|apachegroup|wamp\d*|appserv|inetpub|php\d*|mysql(?: ?server ?[\d.]+)?|filezilla server|nginx[\w.-]*|tomcat[\w.-]*|mercurymail|opt[/\\]xampp|logs?)[/\\](?:[^/\\]+[/\\])*?(?:[^/\\]*\.(?:conf|log|ini|cnf|err|xml|inc|php|pdb)|[^/\\]*_log)$",
            r"|[a-z]:[/\\](?:windows|winnt)[/\\](?:(?:panther|debug|repair|csc)[/\\][^/\\]|system32[/\\](?:config|drivers|inetsrv|logfiles)[/\\]|(?:win|system|php|my)\.ini|iis\d*\.log|windowsupdate\.log)",
            r"|[a-z]:[/\\](?:unattend\.(?:xml|txt)|sysprep|boot\.ini|php\d*[/\\]sessions|inetpub[/\\])",
            r"|[a-z]:[/\\](?:documents and settings|users)[/\\][^/\\]+[/\\]ntuser\.(?:ini|dat)$",
            // wherever they are: PostgreSQL's client authentication and settings files (a value that
            // is only such a path is a file inclusion probe against this very server; a DBA's note
            // that names one in a sentence is not a path value) and its clients' history and
            // passwords, an application's environment and secrets files,
            // package registries', cloud and cluster clients' credentials, MySQL's configuration in
            // its own folder and Tomcat's, Active Directory's database, the Docker daemon's socket
            r"|.*?[/\\](?:pg_hba\.conf|pg_ident\.conf|postgresql(?:\.auto)?\.conf|\.psql_history|\.pgpass|\.env(?:\.(?:local|prod|production|dev|development|staging|test)){0,2}|\.npmrc|\.pypirc|\.git[/\\](?:config|head)|\.aws[/\\]credentials|\.docker[/\\]config\.json|\.kube[/\\]config|\.config[/\\]gcloud[/\\][^/\\]+|\.my\.cnf|mysql[^/\\]*[/\\](?:[^/\\]+[/\\])*?my\.(?:ini|cnf)|tomcat[\w.-]*[/\\]conf[/\\][\w-]+\.xml|tomcat-users\.xml|ntds\.dit|(?:secrets|credentials)\.ya?ml|credentials\.db|docker\.sock|k3s\.yaml|appdata[/\\]roaming[/\\]microsoft[/\\](?:credentials|protect)(?:[/\\][^/\\]*)*)$",
            // MySQL's user tables, a cluster's and the container engine's state and configuration,
            // bash's network redirection (`/dev/tcp/host/port`) (not a
            // database's data folder: `/var/lib/postgresql/15/main` is a DBA's note)
            r"|/(?:var/lib/(?:mysql/mysql|docker)/|etc/(?:kubernetes|rancher|redis|docker)/|var/lib/kubelet/|(?:var/)?run/docker\.sock$|run/secrets/[\w.-]+$|dev/(?:tcp|udp)/[\w.-]+/\d+$)",
            r")",
        ))
        .unwrap(),
        // A fragment of a PHP filter chain (`convert.iconv.UTF8.CSISO2022KR`,
        // `convert.base64-decode`): the building blocks of php://filter payloads that run code.
        filter_chain: Regex::new(r"(?i)(?-u:\b)convert\.(?:iconv\.[a-z0-9_-]+[./][a-z0-9_:-]+|base64-(?:en|de)code|quoted-printable-(?:en|de)code)").unwrap(),
        // Cloud instance metadata (AWS, GCP, Azure, OpenStack, Alibaba; the ECS task endpoint):
        // a URL of it stored where the server fetches URLs (a webhook, an avatar) returns the
        // instance's credentials. The address with a path or after `//`, the host names anywhere.
        // (as a URL or a parameter's value, with a path after the address: not a CIDR,
        // `169.254.169.254/32`, nor prose naming it, `hop limit 1 for 169.254.169.254/latest/...`)
        metadata: Regex::new(r"(?i)(?:^|//|@|=)(?:169\.254\.169\.254|100\.100\.100\.200|169\.254\.170\.2|\[?fd00:ec2::254\]?|\[::ffff:169\.254\.169\.254\])(?::\d{1,5})?/[a-z]|//(?:169\.254\.169\.254|\[?fd00:ec2::254\]?|\[::ffff:169\.254\.169\.254\]|2852039166|0xa9fea9fe|0251\.0376\.0251\.0376|instance-data)(?:[:/]|$)|(?-u:\b)metadata\.google\.internal(?-u:\b)|/computemetadata/v1(?-u:\b)|//kubernetes\.default(?:\.svc(?:\.cluster\.local)?)?(?::\d{1,5})?/(?:api|apis)(?:/|$)|//(?:localhost|127\.0\.0\.1|0\.0\.0\.0|\[::1\]):237[56]/").unwrap(),
        // Remote file inclusion: a URL of a script or a text file to include, its query left
        // empty so that what the application appends is ignored (`http://x/shell.txt?`), or a
        // script over FTP. A value that is only the URL.
        remote_include: Regex::new(r"(?i)^(?:(?:https?|ftp)://[^\s/?#]+/[^\s?#]*\.(?:txt|php\d?|phtml|inc|jsp|aspx?|sh|pl|py)\?|ftp://[^\s/?#]+/[^\s?#]*\.(?:php\d?|phtml|jsp|aspx?))$").unwrap(),
        ntfs_stream: Regex::new(r"(?i)\.[a-z0-9]{1,8}:[\w.-]{0,40}:\$data(?-u:\b)|::\$(?:index_allocation|bitmap)(?-u:\b)|:\$i30:").unwrap(),
    })
}

fn push(out: &mut Vec<Hit>, rule: &'static str, weight: u8, m: regex::Match, text: &str) {
    push_span(out, rule, weight, m.start(), m.end(), text);
}

/// [`push`] for the evidence `text[start..end]`.
fn push_span(out: &mut Vec<Hit>, rule: &'static str, weight: u8, start: usize, end: usize, text: &str) {
    if out.iter().any(|h| h.rule_id == rule) {
        return;
    }
    let ev: String = text[start..end].chars().map(|c| if c == '\0' { '␀' } else { c }).take(40).collect();
    out.push(Hit { class: Class::Traversal, rule_id: rule, weight, offset: start, length: (end - start).min(64), detail: format!("match={:?}", ev) });
}

/// Whether the value is one file path and nothing else (see `path_of`).
pub(crate) fn path_value(text: &str) -> bool {
    path_of(text).is_some()
}

/// The file path a value is, and nothing else: it starts at the root (`/`, `\\`), a drive
/// (`C:\\`, `c:/`) or a home folder (`~/`, `~user/`), after a quote or a `name=` if any (`'/etc/x`,
/// `page=/etc/x`), and ends with a path word: not a sentence that starts with a path. The path
/// is a slice of `text`, without trailing NULs.
fn path_of(text: &str) -> Option<&str> {
    let t = text.trim().trim_start_matches(['\'', '"']);
    let t = match t.split_once('=') {
        Some((name, rest)) if (1..=20).contains(&name.len()) && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_') => rest,
        _ => t,
    };
    let b = t.as_bytes();
    // (`~/x`, `~postgres/x`: a home folder)
    let home = t.strip_prefix('~').and_then(|r| r.split_once('/')).is_some_and(|(user, _)| user.len() <= 32 && user.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-'));
    let rooted = b.first().is_some_and(|&c| c == b'/' || c == b'\\') || home || b.len() > 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && matches!(b[2], b'/' | b'\\');
    // (up to six words: `C:/program files (x86)/apache group/apache/conf/httpd.conf`; the last
    // one holds a separator or ends with an extension: not `/var/log/x.log is full`)
    let last = t.split_whitespace().last().unwrap_or("");
    // (an extension starts with a letter: not `09.30`)
    let extension = last.rsplit_once('.').is_some_and(|(_, e)| (1..=5).contains(&e.len()) && e.starts_with(|c: char| c.is_ascii_alphabetic()) && e.bytes().all(|c| c.is_ascii_alphanumeric()));
    (rooted && !t.contains(['\n', '\r', ',']) && t.split_whitespace().count() <= 6 && (last.contains(['/', '\\']) || extension || t == last)).then(|| t.trim_end_matches('\0'))
}

/// A path in a folder of public certificates that configuration tables name
/// (`/etc/ssl/certs/ca.pem`): not a file inclusion target of its own.
fn is_trusted_config(from_match: &str) -> bool {
    let l = from_match.trim_start_matches(['/', '\\']).to_ascii_lowercase();
    ["etc/ssl/certs/", "etc/pki/tls/certs/", "etc/ca-certificates"].iter().any(|p| l.starts_with(p))
}

pub fn scan(text: &str, had_nul: bool, path_ctx: bool, out: &mut Vec<Hit>) {
    let r = rx();
    let b = text.as_bytes();
    if b.windows(2).any(|w| w == b".." || w == b"/\\" || w == b"\\/") || b.windows(4).any(|w| w.eq_ignore_ascii_case(b"Li4v") || w.eq_ignore_ascii_case(b"Ly4u") || w.eq_ignore_ascii_case(b"Li5c") || w.eq_ignore_ascii_case(b"Li8u")) || b.windows(2).filter(|w| w[0] == b'.' && (w[1] == b'/' || w[1] == b'\\')).count() >= 3 || b.windows(4).any(|w| w.eq_ignore_ascii_case(b"0x2e")) {
        if let Some(m) = r.dotdot.find(text) {
            push(out, "traversal.dot_dot", 90, m, text);
        } else if let Some(m) = r.dotdot_weird.find(text) {
            push(out, "traversal.dot_dot", 80, m, text);
        }
    }
    // (an encoded part in the match: plain `../` is the rule above's, and `Price?./proc`,
    // `pending.../processing` are prose)
    let encoded = |m: &regex::Match| m.as_str().bytes().any(|c| c == b'%' || c == 0) || m.as_str().to_ascii_lowercase().contains("0x");
    if let Some(m) = if b.contains(&b'%') || b.contains(&0) || b.windows(2).any(|w| w.eq_ignore_ascii_case(b"0x")) { r.dotdot_encoded.find_iter(text).find(encoded) } else { None } {
        push(out, "traversal.dot_dot", 85, m, text);
    }
    if b.iter().any(|&c| c == b'/' || c == b'\\' || c == b'.') {
        let path = path_of(text);
        if let Some((t, m)) = path.and_then(|t| r.lfi_path.find(t).filter(|m| !is_trusted_config(&t[m.start()..])).map(|m| (t, m))) {
            // (the path is a slice of `text`: the evidence's offsets are `text`'s)
            let start = t.as_ptr() as usize - text.as_ptr() as usize + m.start();
            if !out.iter().any(|h| h.rule_id == "traversal.sensitive_path") {
                let ev: String = m.as_str().chars().take(40).collect();
                out.push(Hit { class: Class::Traversal, rule_id: "traversal.sensitive_path", weight: 80, offset: start, length: m.len().min(64), detail: format!("match={:?}", ev) });
            }
        }
        // (as a value or a chain, not named in a sentence)
        if let Some(m) = if b.contains(&b'.') && !text.trim().contains(char::is_whitespace) { r.filter_chain.find(text) } else { None } {
            push(out, "traversal.stream_wrapper", 80, m, text);
        }
        // (in a value that is only a path, the system folders are `lfi_path`'s: not
        // `/var/log/oms/eod.log`, `/opt/oms/var/log/audit.csv`, an application's own)
        let path_only = path.is_some();
        let deferred = |m: &regex::Match| {
            let l = m.as_str().trim_start_matches(|c: char| !c.is_ascii_alphanumeric()).to_ascii_lowercase();
            path_only && (l.starts_with("var/") || l.starts_with("var\\") || l.starts_with("proc/") && !l.starts_with("proc/self"))
        };
        if let Some(m) = r.sensitive.find_iter(text).find(|m| !deferred(m)) {
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
        // A Windows network path to a script or a program, or through WebDAV
        // (`\\evil.example\share\x.php`, `\\host@SSL\DavWWWRoot\x`): remote file inclusion, and the
        // server's Windows login sent to that host. A value that is only the path.
        let t = text.trim();
        if t.starts_with("\\\\") && !t.contains(char::is_whitespace) {
            let l = t.to_ascii_lowercase();
            let host_and_path = l[2..].split_once('\\').filter(|(h, p)| !h.is_empty() && !p.is_empty());
            const RUN: &[&str] = &[".php", ".phtml", ".jsp", ".asp", ".aspx", ".dll", ".exe", ".ps1", ".bat", ".cmd", ".hta", ".scr", ".vbs", ".js", ".lnk", ".scf", ".so"];
            if host_and_path.is_some() && (l.contains("@ssl") || l.contains("davwwwroot") || RUN.iter().any(|e| l.ends_with(e))) {
                let start = text.len() - text.trim_start().len();
                push_span(out, "traversal.unc_path", 80, start, start + t.len(), text);
            }
        }
        if let Some(m) = if b.contains(&b'/') { r.metadata.find(text) } else { None } {
            push(out, "traversal.metadata_endpoint", 80, m, text);
        }
        if let Some(m) = if b.contains(&b':') { r.remote_include.find(text.trim()) } else { None } {
            let start = text.len() - text.trim_start().len();
            push_span(out, "traversal.remote_include", 80, start + m.start(), start + m.end(), text);
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
