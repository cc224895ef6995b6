//! Where the Hub is, where hf-hub caches, and the token, from the environment.

use std::path::PathBuf;

use hf_hub::api::sync::{Api, ApiBuilder};
use hf_hub::Cache;

use crate::error::{HubError, Result};

/// The default Hub, as in hf-hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where the Hub is, where hf-hub caches, and the token: resolved as hf-hub 0.5 resolves them
/// (`ApiBuilder::from_env`), plus `HF_TOKEN` as the Python `huggingface_hub` reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct HubSettings {
    /// HF_ENDPOINT, without a trailing `/`; default https://huggingface.co.
    pub endpoint: String,
    /// $HF_HOME/hub, or ~/.cache/huggingface/hub.
    pub cache_dir: PathBuf,
    /// HF_TOKEN when set and not empty. Without it hf-hub reads `$HF_HOME/token` (the file
    /// `huggingface-cli login` writes), which is the cache dir's sibling.
    pub token: Option<String>,
}

impl HubSettings {
    /// The settings of this process's environment.
    pub fn from_env() -> Result<Self> {
        Self::resolve(|name| std::env::var(name).ok())
    }

    /// The settings from an environment given as a lookup function (testable without
    /// touching the process's environment).
    pub fn resolve(var: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let non_empty = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let endpoint = match non_empty("HF_ENDPOINT") {
            Some(e) => {
                let e = e.trim().trim_end_matches('/').to_string();
                if !(e.starts_with("https://") || e.starts_with("http://")) {
                    return Err(HubError::Request(format!(
                        "HF_ENDPOINT is `{e}`; it must be a URL such as https://huggingface.co (or a mirror)"
                    )));
                }
                e
            }
            None => DEFAULT_ENDPOINT.to_string(),
        };
        let cache_dir = match non_empty("HF_HOME") {
            Some(home) => PathBuf::from(home).join("hub"),
            None => match non_empty("HOME").or_else(|| non_empty("USERPROFILE")) {
                Some(home) => PathBuf::from(home).join(".cache").join("huggingface").join("hub"),
                None => return Err(HubError::Request(
                    "no home folder (HOME is not set) for hf-hub's cache: set HF_HOME to the folder the HuggingFace cache should live in".into(),
                )),
            },
        };
        let token = non_empty("HF_TOKEN").map(|t| t.trim().to_string());
        Ok(Self {
            endpoint,
            cache_dir,
            token,
        })
    }

    /// hf-hub's blocking client for these settings.
    pub(crate) fn api(&self, progress: bool) -> Result<Api> {
        // `from_cache` reads the token file next to the cache, as `ApiBuilder::from_env` does.
        let mut builder = ApiBuilder::from_cache(Cache::new(self.cache_dir.clone()))
            .with_endpoint(self.endpoint.clone())
            .with_progress(progress)
            .with_retries(3)
            .with_user_agent("bert-cli", env!("CARGO_PKG_VERSION"));
        if let Some(token) = &self.token {
            builder = builder.with_token(Some(token.clone()));
        }
        builder
            .build()
            .map_err(|e| HubError::Hub(format!("could not set up the HuggingFace Hub client: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn settings_follow_hf_hub() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            let map: HashMap<&str, &str> = pairs.iter().copied().collect();
            move |k: &str| map.get(k).map(|v| v.to_string())
        };
        let s = HubSettings::resolve(env(&[("HOME", "/home/u")])).unwrap();
        assert_eq!(s.endpoint, "https://huggingface.co");
        assert_eq!(s.cache_dir, PathBuf::from("/home/u/.cache/huggingface/hub"));
        assert_eq!(s.token, None);
        let s = HubSettings::resolve(env(&[
            ("HOME", "/home/u"),
            ("HF_HOME", "/data/hf"),
            ("HF_ENDPOINT", "https://hf-mirror.example/"),
            ("HF_TOKEN", " hf_abc \n"),
        ]))
        .unwrap();
        assert_eq!(s.endpoint, "https://hf-mirror.example");
        assert_eq!(s.cache_dir, PathBuf::from("/data/hf/hub"));
        assert_eq!(s.token.as_deref(), Some("hf_abc"));
        let s = HubSettings::resolve(env(&[
            ("HF_HOME", "/data/hf"),
            ("HF_TOKEN", ""),
            ("HF_ENDPOINT", ""),
        ]))
        .unwrap();
        assert_eq!(
            (s.token, s.endpoint.as_str()),
            (None, "https://huggingface.co")
        );
        assert!(
            HubSettings::resolve(env(&[("HOME", "/h"), ("HF_ENDPOINT", "huggingface.co")]))
                .is_err()
        );
        let err = HubSettings::resolve(env(&[])).unwrap_err().to_string();
        assert!(err.contains("HF_HOME"), "{err}");
    }
}
