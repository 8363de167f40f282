//! `identity: 'auto'`: DefaultAzureCredential's order (api.md). Each credential the environment
//! sets up is tried in order until one gives a token; that one is kept for every later request.

use super::*;

pub struct Chain {
    links: Vec<Box<dyn Provider>>,
    /// Why the credentials left out were left out (for `doctor`).
    skipped: Vec<String>,
    /// The index of the credential that worked.
    chosen: Mutex<Option<usize>>,
}

impl Chain {
    pub fn new(links: Vec<Box<dyn Provider>>, skipped: Vec<String>) -> Self {
        Chain {
            links,
            skipped,
            chosen: Mutex::new(None),
        }
    }

    fn chosen(&self) -> Option<usize> {
        *self.chosen.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Provider for Chain {
    fn describe(&self) -> String {
        let order: Vec<String> = self.links.iter().map(|l| l.describe()).collect();
        match self.chosen() {
            Some(i) => format!(
                "{} (the first of the chain that gave a token: {})",
                self.links[i].describe(),
                order.join(" → ")
            ),
            None => format!(
                "{} (the first of the chain {}{})",
                self.links
                    .first()
                    .map(|l| l.describe())
                    .unwrap_or_else(|| "none".into()),
                order.join(" → "),
                if self.skipped.is_empty() {
                    String::new()
                } else {
                    format!("; left out: {}", self.skipped.join("; "))
                }
            ),
        }
    }

    fn fetch<'a>(
        &'a self,
        http: &'a Http,
        resource: &'a str,
        tenant: Option<&'a str>,
        deadline: Instant,
    ) -> TokenFuture<'a> {
        Box::pin(async move {
            if let Some(i) = self.chosen() {
                return self.links[i].fetch(http, resource, tenant, deadline).await;
            }
            let mut failures = Vec::new();
            for (i, link) in self.links.iter().enumerate() {
                match link.fetch(http, resource, tenant, deadline).await {
                    Ok(token) => {
                        *self.chosen.lock().unwrap_or_else(|p| p.into_inner()) = Some(i);
                        return Ok(token);
                    }
                    // The caller's deadline is every link's deadline: no point going on.
                    Err(e) if e.code == ErrorCode::Timeout => return Err(e),
                    // The credential is set up and its endpoint refused (a status, or a host
                    // not allowed): that is the answer, as with DefaultAzureCredential.
                    Err(e) if e.status.is_some() || e.code == ErrorCode::HostNotAllowed => {
                        return Err(e)
                    }
                    // Not available here (not configured, nothing answered, no tool): the next.
                    Err(e) => failures.push(e.message),
                }
            }
            let mut e = fail(format!(
                "no credential in the chain gave a token: {}{}",
                failures.join("; "),
                if self.skipped.is_empty() {
                    String::new()
                } else {
                    format!(" (left out: {})", self.skipped.join("; "))
                }
            ));
            e.transient = true;
            Err(e)
        })
    }
}
