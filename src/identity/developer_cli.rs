//! A developer's own sign-in: the Azure CLI (`az account get-access-token`) and the Azure
//! Developer CLI (`azd auth token`). The tool is run directly (no shell; on Windows through
//! `cmd /d /c`, as its `.cmd` needs), found on the PATH the manager was given, killed at the
//! call's deadline, and its token taken from its JSON output.

use super::*;

/// The most output read from the tool.
const MAX_OUTPUT: usize = 64 * 1024;

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
            let child = cmd.spawn().map_err(|e| {
                fail(format!(
                    "{}: `{}` could not be started ({})",
                    self.kind,
                    exe.display(),
                    e.kind()
                ))
            })?;
            let output = match tokio::time::timeout_at(deadline, child.wait_with_output()).await {
                Err(_) => {
                    return Err(SecretError::new(
                        ErrorCode::Timeout,
                        format!("{}: `{tool}` did not answer before the deadline", self.kind),
                    ))
                }
                Ok(Err(e)) => {
                    return Err(fail(format!(
                        "{}: `{tool}` failed ({})",
                        self.kind,
                        e.kind()
                    )))
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
            if stdout.len() > MAX_OUTPUT {
                zeroize::Zeroize::zeroize(&mut stdout);
                return Err(fail(format!(
                    "{}: `{tool}` printed more than 64 KiB",
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
