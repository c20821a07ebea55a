//! Reads from the API server as JSON, paginated, backing off when the server asks for it.
//!
//! Velero reads through client-go with a fixed client-side rate limit. We do not limit ourselves:
//! we send as fast as the server answers and slow down only when it says so (HTTP 429 from API
//! Priority and Fairness, or 503/504 while it is overloaded), which is both faster on an idle
//! server and kinder to a busy one.

use std::time::Duration;

use serde_json::Value;
use serde_json::value::RawValue;

/// Items per list page (Velero's `--client-page-size` default).
pub const PAGE_SIZE: u32 = 500;

const MAX_ATTEMPTS: u32 = 8;

#[derive(Clone)]
pub struct ApiReader {
    client: kube::Client,
}

fn retryable(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 503 | 504),
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(status) if status.code == 404)
}

impl ApiReader {
    pub fn new(client: kube::Client) -> Self {
        ApiReader { client }
    }

    pub fn client(&self) -> &kube::Client {
        &self.client
    }

    /// GET `path_and_query` as JSON, retrying with exponential backoff while the server is
    /// throttling or briefly unavailable.
    pub async fn get(&self, path_and_query: &str) -> Result<Value, kube::Error> {
        self.get_as(path_and_query).await
    }

    /// [`ApiReader::get`] into any type.
    pub async fn get_as<T: serde::de::DeserializeOwned>(
        &self,
        path_and_query: &str,
    ) -> Result<T, kube::Error> {
        let mut delay = Duration::from_millis(100);
        let mut attempt = 1;
        loop {
            let request = http::Request::get(path_and_query)
                .body(Vec::new())
                .map_err(kube::Error::HttpError)?;
            match self.client.request::<T>(request).await {
                Ok(v) => return Ok(v),
                Err(e) if attempt < MAX_ATTEMPTS && retryable(&e) => {
                    tracing::debug!(
                        path = path_and_query,
                        attempt,
                        "API server asked us to back off: {e}"
                    );
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(5));
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// GET one object; `None` when it does not exist.
    pub async fn get_opt(&self, path: &str) -> Result<Option<Value>, kube::Error> {
        match self.get(path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A pager over `path`: one page in memory at a time.
    pub fn pages<'a>(&'a self, path: &'a str, label_selector: Option<&'a str>) -> Pager<'a> {
        Pager {
            reader: self,
            path,
            label_selector,
            continue_token: None,
            done: false,
        }
    }

    /// Every item of `path`, for lists known to be small (ClusterRoleBindings, namespaces).
    pub async fn list_all(&self, path: &str) -> Result<Vec<Value>, kube::Error> {
        let mut pager = self.pages(path, None);
        let mut all = Vec::new();
        while let Some(page) = pager.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }
}

/// Walks a paginated list with `limit` and `continue`.
pub struct Pager<'a> {
    reader: &'a ApiReader,
    path: &'a str,
    label_selector: Option<&'a str>,
    continue_token: Option<String>,
    done: bool,
}

impl Pager<'_> {
    // Built apart from `next_page` so the serializer (not Send) is never held across an await.
    fn query(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        query.append_pair("limit", &PAGE_SIZE.to_string());
        if let Some(selector) = self.label_selector.filter(|s| !s.is_empty()) {
            query.append_pair("labelSelector", selector);
        }
        if let Some(token) = &self.continue_token {
            query.append_pair("continue", token);
        }
        query.finish()
    }

    /// The next page's items as raw JSON; `None` after the last page. Items are not parsed, so a
    /// caller that only reads their metadata pays for little more than the bytes.
    pub async fn next_raw_page(&mut self) -> Result<Option<Vec<Box<RawValue>>>, kube::Error> {
        if self.done {
            return Ok(None);
        }
        let path = format!("{}?{}", self.path, self.query());
        let page: RawPage = self.reader.get_as(&path).await?;
        self.continue_token = page.metadata.continue_token.filter(|t| !t.is_empty());
        self.done = self.continue_token.is_none();
        Ok(Some(page.items.unwrap_or_default()))
    }

    /// The next page's items, parsed; `None` after the last page.
    pub async fn next_page(&mut self) -> Result<Option<Vec<Value>>, kube::Error> {
        let Some(raw) = self.next_raw_page().await? else {
            return Ok(None);
        };
        Ok(Some(
            raw.iter()
                .filter_map(|r| serde_json::from_str(r.get()).ok())
                .collect(),
        ))
    }
}

#[derive(serde::Deserialize)]
struct RawPage {
    metadata: RawPageMeta,
    items: Option<Vec<Box<RawValue>>>,
}

#[derive(serde::Deserialize)]
struct RawPageMeta {
    #[serde(rename = "continue")]
    continue_token: Option<String>,
}
