//! The connectivity check run inside a consumer's task through ECS Exec: a probe script
//! that uses what the container has — `valkey-cli`/`redis-cli` (when it speaks TLS or the
//! app's URL is plain), else `python3`, else `ruby`, else `openssl s_client`, else a shell's
//! `/dev/tcp` (TCP only) — and reports each layer as `CDK|…` lines, read back into a
//! [`ConnectivityReport`]; and the side-by-side diagnosis against the same check from here.
//! A probe that cannot check a layer says so in its lines.
//!
//! The probe reads the address and the secret from the app's own variables (their names
//! are in the command line, their values never): ExecuteCommand command lines are recorded.

use super::{ConnectivityReport, Failure, Latency, Stage};
use crate::domain::Endpoint;

/// Which client the probe uses in the container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// The first the container has, in the order below.
    Auto,
    ValkeyCli,
    Python3,
    Ruby,
    OpensslSClient,
    DevTcp,
}

impl Probe {
    pub fn parse(s: &str) -> Option<Probe> {
        Some(match s {
            "auto" | "" => Probe::Auto,
            "valkey-cli" | "redis-cli" => Probe::ValkeyCli,
            "python3" => Probe::Python3,
            "ruby" => Probe::Ruby,
            "openssl" | "s_client" | "openssl-s-client" => Probe::OpensslSClient,
            "dev-tcp" | "/dev/tcp" => Probe::DevTcp,
            _ => return None,
        })
    }
    fn as_arg(self) -> &'static str {
        match self {
            Probe::Auto => "auto",
            Probe::ValkeyCli => "cli",
            Probe::Python3 => "python3",
            Probe::Ruby => "ruby",
            Probe::OpensslSClient => "openssl",
            Probe::DevTcp => "devtcp",
        }
    }
}

/// The Python probe (no single quote inside: it is passed in one).
const PYTHON: &str = r#"
import os,sys,socket,ssl,time
from urllib.parse import urlparse,unquote
def out(*a):
    print("CDK|"+"|".join(str(x).replace("|","/").replace("\n"," ").replace("\r"," ") for x in a),flush=True)
names,host,port,tls,n,to=sys.argv[1].split(","),sys.argv[2],int(sys.argv[3]),sys.argv[4]=="1",int(sys.argv[5]),float(sys.argv[6])
user=pw=None;src=[]
for k in names:
    v=os.environ.get(k,"")
    if not v: continue
    if v.startswith(("redis://","rediss://","valkey://","valkeys://")):
        u=urlparse(v);host=u.hostname or host;port=u.port or 6379;tls=u.scheme in ("rediss","valkeys");src.append(k)
        if u.password: pw=unquote(u.password)
        if u.username: user=unquote(u.username)
    elif any(w in k for w in ("PASSWORD","AUTH","TOKEN","SECRET")): pw=v;src.append(k)
    elif "USER" in k: user=v;src.append(k)
    elif "PORT" in k and v.isdigit(): port=int(v);src.append(k)
    elif "HOST" in k: host=v;src.append(k)
out("tool","python3");out("target",host,port,int(tls),",".join(src))
def ms(t): return round((time.perf_counter()-t)*1000,3)
def stage(l,ok,t,d):
    out("stage",l,1 if ok else 0,"-" if t is None else ms(t),d)
    if not ok: sys.exit(0)
t=time.perf_counter()
try: addrs=sorted({a[4][0] for a in socket.getaddrinfo(host,port,type=socket.SOCK_STREAM)})
except Exception as e: stage("dns",False,None,"cannot resolve %s: %s"%(host,e))
stage("dns",True,t,", ".join(addrs))
t=time.perf_counter()
try: s=socket.create_connection((addrs[0],port),timeout=to)
except socket.timeout: stage("tcp",False,None,"connect to %s:%d timed out after %gs"%(addrs[0],port,to))
except ConnectionRefusedError: stage("tcp",False,None,"connection refused by %s:%d"%(addrs[0],port))
except OSError as e: stage("tcp",False,None,"connect to %s:%d: %s"%(addrs[0],port,e.strerror or e))
stage("tcp",True,t,"%s:%d"%(addrs[0],port))
if tls:
    t=time.perf_counter()
    try:
        ctx=ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None)
        s=ctx.wrap_socket(s,server_hostname=host)
    except ssl.SSLCertVerificationError as e: stage("tls",False,None,"certificate not trusted: %s"%e.verify_message)
    except socket.timeout: stage("tls",False,None,"no answer within %gs during the tls handshake"%to)
    except Exception as e: stage("tls",False,None,"handshake failed: %s"%e)
    stage("tls",True,t,"%s, certificate verified for %s (CA: %s)"%(s.version(),host,os.environ.get("SSL_CERT_FILE") or "the system store"))
f=s.makefile("rb")
def cmd(*a):
    s.sendall(b"".join([b"*%d\r\n"%len(a)]+[b"$%d\r\n%s\r\n"%(len(x.encode()),x.encode()) for x in a]))
    return read()
def read():
    l=f.readline()
    if not l: raise EOFError("connection closed")
    c,r=l[:1],l[1:-2].decode(errors="replace")
    if c==b"$":
        if int(r)<0: return None
        d=f.read(int(r)+2);return d[:-2].decode(errors="replace")
    if c==b"*": return [read() for _ in range(max(int(r),0))]
    if c==b"-": return Exception(r)
    return r
try:
    t=time.perf_counter()
    if pw is not None:
        r=cmd(*(["AUTH",user,pw] if user else ["AUTH",pw]))
        if isinstance(r,Exception): stage("auth",False,None,str(r)[:200])
        stage("auth",True,t,"as %s, with the password from the app\x27s variables"%(user or "default"))
    w=cmd("ACL","WHOAMI")
    if isinstance(w,str): out("user",w)
    t=time.perf_counter();r=cmd("PING")
    if isinstance(r,Exception): stage("auth" if "NOAUTH" in str(r) else "ping",False,None,str(r)[:200])
    stage("ping",True,t,"PONG")
    xs=[]
    for i in range(max(n,1)):
        t=time.perf_counter();cmd("PING");xs.append(ms(t))
    xs.sort();rank=lambda p:xs[max(1,min(len(xs),-(-len(xs)*p//100)))-1]
    out("latency",len(xs),rank(50),rank(99),xs[-1])
    r=cmd("ROLE")
    if isinstance(r,list) and r: out("role",{"master":"primary","slave":"replica"}.get(r[0],r[0]))
except socket.timeout: stage("ping",False,None,"no answer within %gs"%to)
except Exception as e: stage("ping",False,None,"%s"%e)
"#;

/// The Ruby probe, the same layers as the Python one (no single quote inside).
const RUBY: &str = r##"
require "socket";require "openssl";require "uri";require "timeout"
def out(*a)
  $stdout.write("CDK|"+a.map{|x| x.to_s.gsub("|","/").gsub(/[\r\n]/," ")}.join("|")+"\n");$stdout.flush
end
def unq(s) s.gsub(/%([0-9a-fA-F]{2})/){$1.hex.chr} end
names,host,port,tls,n,to=ARGV[0].split(","),ARGV[1],ARGV[2].to_i,ARGV[3]=="1",ARGV[4].to_i,ARGV[5].to_f
user=pw=nil;src=[]
names.each do |k|
  v=ENV[k].to_s
  next if v.empty?
  if v =~ /\A(redis|rediss|valkey|valkeys):\/\//
    u=URI.parse(v);host=u.host||host;port=u.port||6379;tls=%w[rediss valkeys].include?(u.scheme);src<<k
    pw=unq(u.password) if u.password
    user=unq(u.user) if u.user && !u.user.empty?
  elsif %w[PASSWORD AUTH TOKEN SECRET].any?{|w| k.include?(w)} then pw=v;src<<k
  elsif k.include?("USER") then user=v;src<<k
  elsif k.include?("PORT") && v =~ /\A\d+\z/ then port=v.to_i;src<<k
  elsif k.include?("HOST") then host=v;src<<k
  end
end
out("tool","ruby");out("target",host,port,tls ? 1 : 0,src.join(","))
def now() Process.clock_gettime(Process::CLOCK_MONOTONIC) end
def ms(t) ((now-t)*1000).round(3) end
def stage(l,ok,t,d)
  out("stage",l,ok ? 1 : 0,t.nil? ? "-" : ms(t),d)
  exit 0 unless ok
end
t=now
begin
  addrs=Addrinfo.getaddrinfo(host,port,nil,:STREAM).map(&:ip_address).uniq.sort
rescue => e
  stage("dns",false,nil,"cannot resolve #{host}: #{e.message}")
end
stage("dns",true,t,addrs.join(", "))
t=now
begin
  s=Socket.tcp(addrs[0],port,connect_timeout: to)
rescue Errno::ETIMEDOUT
  stage("tcp",false,nil,"connect to #{addrs[0]}:#{port} timed out after #{to}s")
rescue Errno::ECONNREFUSED
  stage("tcp",false,nil,"connection refused by #{addrs[0]}:#{port}")
rescue SystemCallError, IOError => e
  stage("tcp",false,nil,"connect to #{addrs[0]}:#{port}: #{e.message}")
end
stage("tcp",true,t,"#{addrs[0]}:#{port}")
io=s
if tls
  t=now
  ca=ENV["SSL_CERT_FILE"].to_s
  begin
    store=OpenSSL::X509::Store.new
    ca.empty? ? store.set_default_paths : store.add_file(ca)
    ctx=OpenSSL::SSL::SSLContext.new
    ctx.verify_mode=OpenSSL::SSL::VERIFY_PEER;ctx.verify_hostname=true;ctx.cert_store=store
    io=OpenSSL::SSL::SSLSocket.new(s,ctx);io.hostname=host;io.sync_close=true
    Timeout.timeout(to){io.connect}
  rescue Timeout::Error
    stage("tls",false,nil,"no answer within #{to}s during the tls handshake")
  rescue OpenSSL::SSL::SSLError => e
    m=e.message
    if m.include?("certificate verify failed") then stage("tls",false,nil,"certificate not trusted: #{m[/certificate verify failed.*/]}")
    else stage("tls",false,nil,"handshake failed: #{m}") end
  rescue => e
    stage("tls",false,nil,"handshake failed: #{e.message}")
  end
  stage("tls",true,t,"#{io.ssl_version}, certificate verified for #{host} (CA: #{ca.empty? ? "the system store" : ca})")
end
def rd(io)
  l=io.gets("\r\n")
  raise EOFError,"connection closed" unless l
  c,r=l[0],l[1..-3]
  case c
  when "$" then (n=r.to_i) < 0 ? nil : io.read(n+2)[0,n].force_encoding("UTF-8")
  when "*" then (0...[r.to_i,0].max).map{rd(io)}
  when "-" then RuntimeError.new(r)
  else r end
end
cmd=lambda do |*a|
  b="*#{a.size}\r\n".b
  a.each{|x| x=x.to_s.b;b<<"$#{x.bytesize}\r\n".b<<x<<"\r\n".b}
  Timeout.timeout(to){io.write(b);rd(io)}
end
begin
  t=now
  unless pw.nil?
    r=cmd.(*(user ? ["AUTH",user,pw] : ["AUTH",pw]))
    stage("auth",false,nil,r.message[0,200]) if r.is_a?(Exception)
    stage("auth",true,t,"as #{user||"default"}, with the password from the app\x27s variables")
  end
  w=cmd.("ACL","WHOAMI")
  out("user",w) if w.is_a?(String)
  t=now;r=cmd.("PING")
  stage(r.message.include?("NOAUTH") ? "auth" : "ping",false,nil,r.message[0,200]) if r.is_a?(Exception)
  stage("ping",true,t,"PONG")
  xs=[]
  [n,1].max.times{t=now;cmd.("PING");xs<<ms(t)}
  xs.sort!
  rank=->(p){xs[[1,[xs.size,(xs.size*p+99)/100].min].max-1]}
  out("latency",xs.size,rank.(50),rank.(99),xs[-1])
  r=cmd.("ROLE")
  out("role",{"master"=>"primary","slave"=>"replica"}.fetch(r[0],r[0])) if r.is_a?(Array) && !r.empty?
rescue Timeout::Error
  stage("ping",false,nil,"no answer within #{to}s")
rescue => e
  stage("ping",false,nil,e.message)
end
"##;

/// The shell part: reads the app's variables, picks the tool, and runs the valkey-cli,
/// `openssl s_client` or `/dev/tcp` check itself (python3 and ruby run their own script).
const SHELL: &str = r#"
tool=$1 names=$2 host=$3 port=$4 tls=$5 n=$6 to=$7
say() { printf 'CDK|%s\n' "$*"; }
has() { command -v "$1" >/dev/null 2>&1; }
tmo() { if has timeout; then timeout "$to" "$@"; else "$@"; fi; }
pw= user=
for k in $(printf %s "$names" | tr , ' '); do
  eval "v=\${$k:-}"
  case $v in
  redis://*|rediss://*|valkey://*|valkeys://*)
    case $v in rediss://*|valkeys://*) tls=1;; *) tls=0;; esac
    rest=${v#*://}; rest=${rest%%/*}
    case $rest in *@*) cred=${rest%@*}; rest=${rest##*@}; pw=${cred#*:}; u=${cred%%:*}; [ -n "$u" ] && [ "$u" != "$cred" ] && user=$u;; esac
    host=${rest%:*}; [ "$rest" != "$host" ] && port=${rest##*:};;
  *) case $k in *PASSWORD*|*AUTH*|*TOKEN*|*SECRET*) pw=$v;; *USER*) user=$v;; *PORT*) port=$v;; *HOST*) host=$v;; esac;;
  esac
done
cli=$(command -v valkey-cli || command -v redis-cli)
cli_ok() { [ -n "$cli" ] && { [ "$tls" != 1 ] || "$cli" --help 2>&1 | grep -q -e --tls; }; }
if [ "$tool" = auto ]; then
  if cli_ok; then tool=cli
  elif has python3; then tool=python3
  elif has ruby; then tool=ruby
  elif has openssl; then tool=openssl
  else tool=devtcp; fi
fi
dns() {
  case $host in
  *:*|*[!0-9.]*) ;;
  *) say "stage|dns|1|-|$host"; return;;
  esac
  if has getent; then
    a=$(getent hosts "$host" | awk '{print $1}' | tr '\n' ' ')
    if [ -z "$a" ]; then say "stage|dns|0|-|cannot resolve $host"; exit 0; fi
    say "stage|dns|1|-|$a"
  fi
}
devtcp() {
  if has bash && tmo bash -c "exec 3<>/dev/tcp/$host/$port" 2>/dev/null; then
    say "stage|tcp|1|-|$host:$port (bash /dev/tcp; $1)"
  elif has bash; then
    say "stage|tcp|0|-|cannot connect to $host:$port within ${to}s (bash /dev/tcp)"
  else
    say "stage|tcp|0|-|no client and no bash in the container: nothing could be checked"
  fi
}
case $tool in
python3) exec python3 -c "$CDK_PY" "$names" "$host" "$port" "$tls" "$n" "$to" ;;
ruby) exec ruby -e "$CDK_RB" "$names" "$host" "$port" "$tls" "$n" "$to" ;;
cli)
  say "tool|$(basename "${cli:-valkey-cli}")"
  say "target|$host|$port|$tls|$names"
  if ! cli_ok; then say "stage|probe|0|-|$(basename "${cli:-valkey-cli}") in the container cannot speak TLS (or is missing) and the app's URL needs TLS"; exit 0; fi
  dns
  set -- -h "$host" -p "$port"
  "$cli" --help 2>&1 | grep -q -e "-t <timeout>" && set -- "$@" -t "$to"
  [ "$tls" = 1 ] && set -- "$@" --tls ${SSL_CERT_FILE:+--cacert "$SSL_CERT_FILE"}
  [ -n "$user" ] && set -- "$@" --user "$user"
  [ -n "$pw" ] && export REDISCLI_AUTH="$pw"
  r=$(tmo "$cli" "$@" --no-auth-warning PING 2>&1); rc=$?
  r=$(printf %s "$r" | tr '\n' ' ')
  [ "$rc" = 124 ] && [ -z "$r" ] && r="timed out"
  case $r in
  *PONG*) say "stage|tcp|1|-|$host:$port"
    [ "$tls" = 1 ] && say "stage|tls|1|-|certificate verified for $host (CA: ${SSL_CERT_FILE:-the system store})"
    [ -n "$pw" ] && say "stage|auth|1|-|as ${user:-default}, with the password from the app's variables"
    say "stage|ping|1|-|PONG";;
  *refused*) say "stage|tcp|0|-|connection refused by $host:$port"; exit 0;;
  *timed\ out*) say "stage|tcp|0|-|connect to $host:$port timed out after ${to}s"; exit 0;;
  *"No route"*|*unreachable*|*"Connection reset"*) say "stage|tcp|0|-|connect to $host:$port: $r"; exit 0;;
  *certificate*|*verify*) say "stage|tcp|1|-|$host:$port"; say "stage|tls|0|-|certificate not trusted: $r"; exit 0;;
  *SSL*|*TLS*) say "stage|tcp|1|-|$host:$port"; say "stage|tls|0|-|handshake failed: $r"; exit 0;;
  *WRONGPASS*) say "stage|tcp|1|-|$host:$port"; say "stage|auth|0|-|WRONGPASS${r#*WRONGPASS}"; exit 0;;
  *NOAUTH*) say "stage|tcp|1|-|$host:$port"; say "stage|auth|0|-|NOAUTH${r#*NOAUTH}"; exit 0;;
  *AUTH*|*password*) say "stage|tcp|1|-|$host:$port"; say "stage|auth|0|-|$r"; exit 0;;
  *) say "stage|ping|0|-|$r"; exit 0;;
  esac
  w=$("$cli" "$@" --no-auth-warning ACL WHOAMI 2>/dev/null | head -n 1)
  case $w in ""|*ERR*|*NOPERM*) ;; *) say "user|$w";; esac
  l=$("$cli" "$@" --no-auth-warning --latency -i 1 --raw 2>/dev/null)
  [ -n "$l" ] && say "stage|latency|1|-|min/max/avg/samples ms: $l (valkey-cli --latency)"
  role=$("$cli" "$@" --no-auth-warning ROLE 2>/dev/null | head -n 1)
  case $role in master) say "role|primary";; slave) say "role|replica";; esac
  ;;
openssl)
  say "tool|openssl s_client"
  say "target|$host|$port|$tls|$names"
  dns
  if [ "$tls" != 1 ]; then
    devtcp "openssl s_client speaks TLS only and the app's URL is plain: AUTH and PING not checked"
    exit 0
  fi
  LC_ALL=C; export LC_ALL
  ca=${SSL_CERT_FILE:-the system store}
  set -- s_client -connect "$host:$port" -verify_return_error
  case $host in
  *:*) set -- "$@" -verify_ip "$host";;
  *[!0-9.]*) set -- "$@" -servername "$host" -verify_hostname "$host";;
  *) set -- "$@" -verify_ip "$host";;
  esac
  [ -n "${SSL_CERT_FILE:-}" ] && set -- "$@" -CAfile "$SSL_CERT_FILE"
  h=$(printf '' | tmo openssl "$@" 2>&1); rc=$?
  first_error() { printf '%s\n' "$h" | grep -i -m 1 -e error -e errno | cut -c 1-200; }
  case $h in
  *CONNECTED\(*) say "stage|tcp|1|-|$host:$port";;
  *errno=111*|*refused*) say "stage|tcp|0|-|connection refused by $host:$port"; exit 0;;
  *) if [ "$rc" = 124 ]; then say "stage|tcp|0|-|connect to $host:$port timed out after ${to}s"
     else say "stage|tcp|0|-|connect to $host:$port: $(first_error)"; fi; exit 0;;
  esac
  case $h in
  *"Verify return code: 0 (ok)"*)
    proto=$(printf '%s\n' "$h" | sed -n -e 's/^ *Protocol *: *//p' -e 's/^New, \(TLSv[0-9.]*\),.*/\1/p' | head -n 1)
    say "stage|tls|1|-|${proto:-TLS}, certificate verified for $host (CA: $ca)";;
  *"verify error"*)
    say "stage|tls|0|-|certificate not trusted: $(printf '%s\n' "$h" | sed -n 's/.*verify error:num=[0-9]*://p' | head -n 1)"; exit 0;;
  *) if [ "$rc" = 124 ]; then say "stage|tls|0|-|no answer within ${to}s during the tls handshake"
     else say "stage|tls|0|-|handshake failed: $(first_error)"; fi; exit 0;;
  esac
  resp() { awk '
    function rd(  l, c, n, i, s, f) {
      if ((getline l) <= 0) return "-EOF: the connection closed"
      c = substr(l, 1, 1)
      if (c == "$") { n = substr(l, 2) + 0; if (n < 0) return "(nil)"; getline s; return s }
      if (c == "*") { n = substr(l, 2) + 0; f = ""; for (i = 0; i < n; i++) { s = rd(); if (i == 0) f = s }; return f }
      return l
    }
    BEGIN { while (1) { r = rd(); print r; if (r ~ /^-EOF/) exit } }'; }
  r=$( {
    if [ -n "$pw" ] && [ -n "$user" ]; then printf '*3\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n' "${#user}" "$user" "${#pw}" "$pw"
    elif [ -n "$pw" ]; then printf '*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n' "${#pw}" "$pw"; fi
    printf '*2\r\n$3\r\nACL\r\n$6\r\nWHOAMI\r\n*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nROLE\r\n*1\r\n$4\r\nQUIT\r\n'
  } | tmo openssl "$@" -quiet -ign_eof 2>/dev/null | tr -d '\r' | resp)
  set -f; IFS='
'; set -- $r; IFS=' '
  if [ -n "$pw" ]; then
    case $1 in +OK) say "stage|auth|1|-|as ${user:-default}, with the password from the app's variables";; *) say "stage|auth|0|-|${1#-}"; exit 0;; esac
    shift
  fi
  case $1 in -*) ;; *) say "user|$1";; esac
  case $2 in
  +PONG) say "stage|ping|1|-|PONG (one PING through openssl s_client: latency p50/p99 not measured)";;
  *NOAUTH*) say "stage|auth|0|-|${2#-}"; exit 0;;
  *) say "stage|ping|0|-|${2#-}"; exit 0;;
  esac
  case $3 in master) say "role|primary";; slave) say "role|replica";; esac
  ;;
*)
  say "tool|/dev/tcp"
  say "target|$host|$port|$tls|$names"
  dns
  if [ -n "$cli" ]; then devtcp "TLS, AUTH and PING not checked: $(basename "$cli") here has no TLS and there is no other client"
  else devtcp "TLS, AUTH and PING not checked: no client in the container"; fi
  ;;
esac
"#;

/// The argv that runs the probe in the container: variables named (never their values),
/// `fallback` as the address when the variables hold none.
pub fn command(
    probe: Probe,
    variables: &[String],
    fallback: &Endpoint,
    pings: u32,
    timeout_secs: f64,
) -> Vec<String> {
    let script = format!(
        "CDK_PY='{}'\nCDK_RB='{}'\nexport CDK_PY CDK_RB\n{}",
        PYTHON.trim(),
        RUBY.trim(),
        SHELL.trim()
    );
    let names: Vec<&str> = variables
        .iter()
        .map(String::as_str)
        .filter(|v| v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .collect();
    vec![
        "sh".into(),
        "-c".into(),
        script,
        "cdk".into(),
        probe.as_arg().into(),
        names.join(","),
        fallback.host.clone(),
        fallback.port.to_string(),
        if fallback.tls { "1" } else { "0" }.into(),
        pings.to_string(),
        format!("{timeout_secs}"),
    ]
}

/// What the probe said: the tool, the variables it read and the report.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RemoteReport {
    pub tool: Option<String>,
    pub variables: Vec<String>,
    pub report: ConnectivityReport,
}

/// Reads the probe's `CDK|…` lines (anything else is ignored).
pub fn parse(output: &[u8]) -> RemoteReport {
    let text = String::from_utf8_lossy(output);
    let mut r = RemoteReport {
        tool: None,
        variables: Vec::new(),
        report: ConnectivityReport {
            target: String::new(),
            tls: false,
            ok: false,
            stages: Vec::new(),
            failure: None,
            latency: None,
            role: None,
            user: None,
        },
    };
    for line in text.lines() {
        let Some(rest) = line.trim_end_matches('\r').strip_prefix("CDK|") else {
            continue;
        };
        let f: Vec<&str> = rest.splitn(6, '|').collect();
        let clean = |s: &str| crate::escape::escape_capped(s.trim(), 300);
        match f.as_slice() {
            ["tool", t] => r.tool = Some(clean(t)),
            ["target", host, port, tls, vars] => {
                r.report.target = format!("{}:{}", clean(host), clean(port));
                r.report.tls = *tls == "1";
                r.variables = vars
                    .split(',')
                    .filter(|v| !v.is_empty())
                    .map(&clean)
                    .collect();
            }
            ["stage", layer, ok, ms, detail] => {
                let ok = *ok == "1";
                let layer = clean(layer);
                r.report.stages.push(Stage {
                    layer: layer.clone(),
                    ok,
                    ms: ms.parse().ok(),
                    detail: clean(detail),
                });
                if !ok && r.report.failure.is_none() {
                    r.report.failure = Some(Failure {
                        layer,
                        detail: clean(detail),
                        likely_cause: None,
                    });
                }
            }
            ["latency", n, p50, p99, max] => {
                if let (Ok(count), Ok(p50_ms), Ok(p99_ms), Ok(max_ms)) =
                    (n.parse(), p50.parse(), p99.parse(), max.parse())
                {
                    r.report.latency = Some(Latency {
                        count,
                        p50_ms,
                        p99_ms,
                        max_ms,
                    });
                    r.report.stages.push(Stage {
                        layer: "latency".into(),
                        ok: true,
                        ms: None,
                        detail: format!("{count} PINGs: p50 {p50_ms} ms, p99 {p99_ms} ms"),
                    });
                }
            }
            ["role", role] => {
                r.report.role = Some(clean(role));
                r.report.stages.push(Stage {
                    layer: "role".into(),
                    ok: true,
                    ms: None,
                    detail: clean(role),
                });
            }
            ["user", u] => r.report.user = Some(clean(u)),
            _ => {}
        }
    }
    if r.report.stages.is_empty() && r.report.failure.is_none() {
        r.report.failure = Some(Failure {
            layer: "probe".into(),
            detail: "the probe printed no result".into(),
            likely_cause: Some(
                "no `sh` in the container (distroless), or the session ended early".into(),
            ),
        });
    }
    r.report.ok =
        r.report.failure.is_none() && r.report.stages.iter().any(|s| s.layer == "ping" && s.ok);
    r
}

/// The likely cause of a failure inside the task, read beside the same check from here.
pub fn diagnose(
    remote: &RemoteReport,
    local: &ConnectivityReport,
    cache_endpoint: Option<&Endpoint>,
) -> Option<String> {
    let f = remote.report.failure.as_ref()?;
    let here_ok_at = |layer: &str| local.stages.iter().any(|s| s.layer == layer && s.ok);
    let here = |layer: &str| {
        if here_ok_at(layer) {
            " but not from here"
        } else {
            " and from here too"
        }
    };
    let vars = if remote.variables.is_empty() {
        "the app's variables".to_string()
    } else {
        remote.variables.join(", ")
    };
    let d = f.detail.to_ascii_lowercase();
    let mut cause = match f.layer.as_str() {
        "dns" => format!(
            "DNS fails from the task{}: the task's VPC DNS (enableDnsSupport/enableDnsHostnames, a private hosted zone not associated with its VPC) or a wrong host in {vars}",
            here("dns")
        ),
        "tcp" if d.contains("timed out") || d.contains("timeout") => format!(
            "TCP timeout from the task{}: the task's security group or the cache's inbound rules (or the subnet's network ACL/route)",
            here("tcp")
        ),
        "tcp" if d.contains("refused") => format!(
            "TCP connection refused from the task{}: nothing listens at the address in {vars} (a wrong port?)",
            here("tcp")
        ),
        "tcp" => format!(
            "TCP fails from the task{} (no route): the task's subnet routes, or its network namespace",
            here("tcp")
        ),
        "tls" if d.contains("certificate") || d.contains("verify") => format!(
            "certificate not trusted from the task{}: the task's CA bundle (SSL_CERT_FILE, the image's CA certificates) lacks the CA that signed the cache's certificate, or {vars} names a host the certificate does not carry",
            here("tls")
        ),
        "tls" => format!(
            "TLS handshake fails from the task{}: TLS on one side only (rediss:// against a plain port, or the reverse)",
            here("tls")
        ),
        "auth" => format!(
            "AUTH refused from the task{}: the app's secret ({vars}) is stale — the token was rotated on the cache but not in the app's secret, or the task was not restarted after the secret changed",
            here("auth")
        ),
        "probe" => f.likely_cause.clone().unwrap_or_default(),
        _ => format!("the cache does not answer from the task{}", here(&f.layer)),
    };
    if let Some(e) = cache_endpoint {
        let dialled = remote.report.target.to_ascii_lowercase();
        if !dialled.is_empty() && dialled != e.address().to_ascii_lowercase() {
            cause.push_str(&format!(
                "; note: the app dials {dialled}, the cache's endpoint is {}",
                e.address()
            ));
        }
    }
    Some(cause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_never_carries_a_value_and_python_has_no_single_quote() {
        assert!(!PYTHON.contains('\'') && !RUBY.contains('\''));
        let argv = command(
            Probe::Auto,
            &["REDIS_URL".into(), "BAD;NAME".into()],
            &Endpoint::new("h", 6379, true),
            5,
            2.0,
        );
        assert_eq!(
            argv[5], "REDIS_URL",
            "names that are not variable names are left out"
        );
        assert_eq!(&argv[6..], ["h", "6379", "1", "5", "2"]);
    }

    #[test]
    fn lines_read_back_into_a_report_with_the_first_failure() {
        let out = b"noise\r\nCDK|tool|python3\r\nCDK|target|127.0.0.1|7000|1|SIDEKIQ_REDIS_URL,REDIS_PASSWORD\r\nCDK|stage|dns|1|0.1|127.0.0.1\r\nCDK|stage|tcp|0|-|connect to 127.0.0.1:7000 timed out after 2s\r\n";
        let r = parse(out);
        assert_eq!(r.tool.as_deref(), Some("python3"));
        assert_eq!(r.variables, ["SIDEKIQ_REDIS_URL", "REDIS_PASSWORD"]);
        assert!(!r.report.ok);
        assert_eq!(r.report.failure.as_ref().unwrap().layer, "tcp");
        let local = ConnectivityReport {
            target: "127.0.0.1:7000".into(),
            tls: true,
            ok: true,
            stages: vec![Stage {
                layer: "tcp".into(),
                ok: true,
                ms: Some(0.1),
                detail: String::new(),
            }],
            failure: None,
            latency: None,
            role: None,
            user: None,
        };
        let cause = diagnose(&r, &local, Some(&Endpoint::new("127.0.0.1", 7000, true))).unwrap();
        assert!(
            cause.starts_with("TCP timeout from the task but not from here: the task's security group or the cache's inbound rules"),
            "{cause}"
        );
        assert!(parse(b"").report.failure.unwrap().layer == "probe");
    }
}
