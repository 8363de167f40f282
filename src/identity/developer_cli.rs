//! A developer's own sign-in: the Azure CLI (`az account get-access-token`) and the Azure
//! Developer CLI (`azd auth token`). The tool is run directly (no shell; on Windows through
//! `cmd /d /c`, as its `.cmd` needs), found on the PATH the manager was given, killed at the
//! call's deadline, and its token taken from its JSON output.

use super::*;

/// The most output read from the tool (stdout: more is a failure; stderr: more is dropped).
const MAX_OUTPUT: usize = 64 * 1024;
const MAX_STDERR: usize = 16 * 1024;

struct Output {
    status: std::process::ExitStatus,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

enum Ran {
    TooLong,
    Failed(std::io::Error),
}

/// Reads the tool's stdout and stderr as they come, capped (stdout beyond `MAX_OUTPUT` stops
/// the run at once, before the rest is read), then waits for its exit.
async fn run_capped(child: &mut tokio::process::Child) -> Result<Output, Ran> {
    use tokio::io::AsyncReadExt;
    let mut so = child.stdout.take();
    let mut se = child.stderr.take();
    // Sized once: no reallocation leaves an unwiped copy of the token behind.
    let mut stdout = Vec::with_capacity(MAX_OUTPUT);
    let mut stderr = Vec::new();
    let mut obuf = [0u8; 8192];
    let mut ebuf = [0u8; 4096];
    let mut too_long = false;
    let mut failed = None;
    while so.is_some() || se.is_some() {
        tokio::select! {
            r = async { match so.as_mut() { Some(p) => p.read(&mut obuf).await, None => Ok(0) } }, if so.is_some() => match r {
                Ok(0) => so = None,
                Ok(n) if stdout.len() + n > MAX_OUTPUT => {
                    too_long = true;
                    break;
                }
                Ok(n) => stdout.extend_from_slice(&obuf[..n]),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            },
            r = async { match se.as_mut() { Some(p) => p.read(&mut ebuf).await, None => Ok(0) } }, if se.is_some() => match r {
                Ok(n) if n > 0 => {
                    let room = MAX_STDERR.saturating_sub(stderr.len());
                    stderr.extend_from_slice(&ebuf[..n.min(room)]);
                }
                _ => se = None,
            },
        }
    }
    zeroize::Zeroize::zeroize(&mut obuf[..]);
    if too_long || failed.is_some() {
        zeroize::Zeroize::zeroize(&mut stdout);
        return Err(failed.map(Ran::Failed).unwrap_or(Ran::TooLong));
    }
    match child.wait().await {
        Ok(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        Err(e) => {
            zeroize::Zeroize::zeroize(&mut stdout);
            Err(Ran::Failed(e))
        }
    }
}

/// Kills the tool and, on unix, its whole process group (what it started), then reaps it.
/// Only while the tool is not yet reaped (`id()` is `Some`): its pid, and so its group id, can
/// then belong to no other process.
async fn kill_group(child: &mut tokio::process::Child) {
    #[cfg(unix)]
    if let Some(pid) = child
        .id()
        .and_then(|p| i32::try_from(p).ok())
        .filter(|p| *p > 0)
    {
        // SAFETY: kill(2) with a negative pid signals that process group; no memory is touched.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
    let _ = child.start_kill();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), child.wait()).await;
}

pub struct DeveloperCli {
    /// "azure-cli" or "azure-developer-cli".
    pub kind: &'static str,
    /// The PATH to look for the tool on (the environment the manager was given).
    pub path: Option<String>,
    pub tenant: Option<String>,
}

fn find_on_path(path: Option<&str>, name: &str) -> Option<std::path::PathBuf> {
    let path = path?;
    let sep = if cfg!(windows) { ';' } else { ':' };
    let names: Vec<String> = if cfg!(windows) {
        vec![
            format!("{name}.cmd"),
            format!("{name}.exe"),
            name.to_owned(),
        ]
    } else {
        vec![name.to_owned()]
    };
    for dir in path.split(sep).filter(|d| !d.is_empty()) {
        for n in &names {
            let p = std::path::Path::new(dir).join(n);
            if p.is_file() {
                return Some(p);
            }
        }
    }
    None
}

/// A value passed as an argument: no whitespace, quotes or shell metacharacters (Windows
/// passes the arguments through cmd).
fn safe_arg(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '/'))
}

/// RFC 3339 (`2025-01-02T03:04:05Z`, `…+01:00`, fractions) or `2025-01-02 03:04:05.000000`
/// (taken as UTC), to unix seconds.
pub fn parse_datetime(s: &str) -> Option<f64> {
    let s = s.trim();
    let date = s.get(0..10)?;
    let d: Vec<i64> = date
        .split('-')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if d.len() != 3 || !matches!(s.as_bytes().get(10), Some(b'T') | Some(b't') | Some(b' ')) {
        return None;
    }
    let rest = s.get(11..)?;
    let time_end = rest.find(['Z', 'z', '+', '-']).unwrap_or(rest.len());
    let (time, zone) = rest.split_at(time_end);
    let time = time.split('.').next()?;
    let t: Vec<i64> = time
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if t.len() != 3
        || t[0] > 23
        || t[1] > 59
        || t[2] > 60
        || !(1..=12).contains(&d[1])
        || !(1..=31).contains(&d[2])
    {
        return None;
    }
    let offset = match zone {
        "" | "Z" | "z" => 0,
        z => {
            let sign = if z.starts_with('-') { -1 } else { 1 };
            let hm: Vec<i64> = z[1..]
                .split(':')
                .map(|x| x.parse().ok())
                .collect::<Option<_>>()?;
            sign * (hm.first()? * 3600 + hm.get(1).copied().unwrap_or(0) * 60)
        }
    };
    let days = days_from_civil(d[0], d[1], d[2]);
    Some((days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2] - offset) as f64)
}

/// The token in a tool's JSON output: `accessToken`/`expires_on`/`expiresOn` (az) or
/// `token`/`expiresOn` (azd).
pub fn parse_cli_token(out: &[u8], now: f64) -> Result<Token, String> {
    let v =
        crate::secret::WipedJson::parse(out).map_err(|_| "its output is not JSON".to_owned())?;
    let token = v
        .get("accessToken")
        .or_else(|| v.get("token"))
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty() && t.bytes().all(|b| (0x21..=0x7e).contains(&b)))
        .ok_or_else(|| "its output has no usable token".to_owned())?
        .to_owned();
    let expires_at = number_or_string(v.get("expires_on"))
        .or_else(|| {
            v.get("expiresOn")
                .and_then(Value::as_str)
                .and_then(parse_datetime)
        })
        .unwrap_or(now + 300.0);
    Ok(Token::new(token, expires_at, now))
}

impl Provider for DeveloperCli {
    fn describe(&self) -> String {
        match self.kind {
            "azure-cli" => "azure-cli (az account get-access-token, your az login)".into(),
            _ => "azure-developer-cli (azd auth token, your azd auth login)".into(),
        }
    }

    fn fetch<'a>(
        &'a self,
        _http: &'a Http,
        resource: &'a str,
        tenant: Option<&'a str>,
        deadline: Instant,
    ) -> TokenFuture<'a> {
        Box::pin(async move {
            let (tool, login) = match self.kind {
                "azure-cli" => ("az", "az login"),
                _ => ("azd", "azd auth login"),
            };
            let resource = resource.trim_end_matches('/');
            if !safe_arg(resource) {
                return Err(fail(format!(
                    "{}: the resource {resource} cannot be passed to {tool}",
                    self.kind
                )));
            }
            let tenant = tenant.or(self.tenant.as_deref());
            if let Some(t) = tenant.filter(|t| !valid_tenant(t)) {
                return Err(fail(format!(
                    "{}: the tenant {} is not a tenant id or domain",
                    self.kind,
                    t.escape_debug()
                )));
            }
            let Some(exe) = find_on_path(self.path.as_deref(), tool) else {
                return Err(fail(format!(
                    "{}: `{tool}` was not found on PATH; install it and run `{login}`",
                    self.kind
                )));
            };
            let mut args: Vec<String> = match self.kind {
                "azure-cli" => vec![
                    "account".into(),
                    "get-access-token".into(),
                    "--output".into(),
                    "json".into(),
                    "--resource".into(),
                    resource.into(),
                ],
                _ => vec![
                    "auth".into(),
                    "token".into(),
                    "--output".into(),
                    "json".into(),
                    "--scope".into(),
                    format!("{resource}/.default"),
                ],
            };
            if let Some(t) = tenant {
                args.push(if self.kind == "azure-cli" {
                    "--tenant".into()
                } else {
                    "--tenant-id".into()
                });
                args.push(t.into());
            }
            let mut cmd = if cfg!(windows) {
                let mut c = tokio::process::Command::new("cmd");
                c.arg("/d").arg("/c").arg(&exe);
                c
            } else {
                tokio::process::Command::new(&exe)
            };
            cmd.args(&args)
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .kill_on_drop(true);
            if let Some(p) = &self.path {
                cmd.env("PATH", p);
            }
            // Its own process group (unix): at the deadline the whole group is killed, so what
            // the tool started (the real `az` is a shell script that runs python) dies with it.
            #[cfg(unix)]
            cmd.process_group(0);
            let mut child = cmd.spawn().map_err(|e| {
                fail(format!(
                    "{}: `{}` could not be started ({})",
                    self.kind,
                    exe.display(),
                    e.kind()
                ))
            })?;
            let ran = tokio::time::timeout_at(deadline, run_capped(&mut child)).await;
            let output = match ran {
                Err(_) => {
                    kill_group(&mut child).await;
                    return Err(SecretError::new(
                        ErrorCode::Timeout,
                        format!("{}: `{tool}` did not answer before the deadline", self.kind),
                    ));
                }
                Ok(Err(Ran::TooLong)) => {
                    kill_group(&mut child).await;
                    return Err(fail(format!(
                        "{}: `{tool}` printed more than 64 KiB",
                        self.kind
                    )));
                }
                Ok(Err(Ran::Failed(e))) => {
                    kill_group(&mut child).await;
                    return Err(fail(format!(
                        "{}: `{tool}` failed ({})",
                        self.kind,
                        e.kind()
                    )));
                }
                Ok(Ok(o)) => o,
            };
            let mut stdout = output.stdout;
            if !output.status.success() {
                zeroize::Zeroize::zeroize(&mut stdout);
                let said: String = String::from_utf8_lossy(&output.stderr)
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(300)
                    .collect();
                let hint = if said.contains("login") || said.contains("expired") {
                    format!(" (run `{login}`)")
                } else {
                    String::new()
                };
                return Err(fail(format!(
                    "{}: `{tool}` failed{hint}: {said}",
                    self.kind
                )));
            }
            let token = parse_cli_token(&stdout, SystemClock.now())
                .map_err(|why| fail(format!("{}: `{tool}`: {why}", self.kind)));
            zeroize::Zeroize::zeroize(&mut stdout);
            token
        })
    }
}
