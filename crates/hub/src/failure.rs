//! What went wrong talking to the Hub, told as one paragraph: what failed, the URL, and what to
//! do about it.

use hf_hub::api::sync::ApiError;

use crate::select::{RepoKind, Target, PARQUET_BRANCH};
use crate::settings::HubSettings;

// Failures, as one paragraph each

/// What went wrong talking to the Hub.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Failure {
    /// The Hub answered with an HTTP error status.
    Status(u16),
    /// No answer: DNS, connection, TLS, timeout, proxy.
    Network(String),
    /// Anything else (cache folder, malformed answer).
    Other(String),
}

pub(crate) fn classify_ureq(e: &ureq::Error) -> Failure {
    match e {
        ureq::Error::StatusCode(code) => Failure::Status(*code),
        ureq::Error::Json(_) | ureq::Error::BodyExceedsLimit(_) => {
            Failure::Other(format!("unexpected answer: {e}"))
        }
        other => Failure::Network(other.to_string()),
    }
}

pub(crate) fn classify_api_error(e: &ApiError) -> Failure {
    match e {
        ApiError::RequestError(inner) => classify_ureq(inner),
        ApiError::TooManyRetries(inner) => classify_api_error(inner),
        ApiError::IoError(io) => Failure::Network(format!("I/O error: {io}")),
        ApiError::MissingHeader(_) | ApiError::InvalidHeader(_) => Failure::Other(format!(
            "unexpected answer ({e}); is HF_ENDPOINT a HuggingFace Hub or a mirror of one?"
        )),
        ApiError::LockAcquisition(path) => Failure::Other(format!(
            "another process is downloading the same file (lock `{}`); wait for it, or delete the lock if no download is running",
            path.display()
        )),
        ApiError::InvalidResume => Failure::Other(
            "a partial download in hf-hub's cache is corrupt; delete the `.part` files under the cache folder and rerun".into(),
        ),
        other => Failure::Other(other.to_string()),
    }
}

/// One paragraph: what failed, the URL, and what to do about it.
pub(crate) fn failure_message(
    what: &str,
    url: &str,
    target: &Target,
    settings: &HubSettings,
    failure: &Failure,
) -> String {
    let env_hint = format!(
        "check your network (and HTTPS_PROXY if you need a proxy), or set HF_ENDPOINT to a reachable Hub mirror (now {}) and HF_HOME to where hf-hub should keep its cache and token (now {})",
        settings.endpoint,
        settings
            .cache_dir
            .parent()
            .unwrap_or(&settings.cache_dir)
            .display()
    );
    match failure {
        Failure::Network(detail) => format!(
            "could not {what}: the HuggingFace Hub did not answer at {url} ({detail}); {env_hint}"
        ),
        Failure::Status(code @ (401 | 403)) => format!(
            "could not {what}: the Hub refused access (HTTP {code}) at {url}; the {} repo `{}` does not exist, is private, or is gated — check the repo id (--dataset for datasets, --model for models), accept its terms at {} if it is gated, and set HF_TOKEN (or log in so that $HF_HOME/token exists)",
            target.noun(),
            target.repo,
            target.page_url(&settings.endpoint)
        ),
        Failure::Status(404) => format!(
            "could not {what}: not found (HTTP 404) at {url}; check the {} repo id `{}` and --revision `{}`{}",
            target.noun(),
            target.repo,
            target.revision,
            if target.kind == RepoKind::Dataset && target.revision != PARQUET_BRANCH {
                format!(" (datasets converted by the Hub live on `--revision {PARQUET_BRANCH}`)")
            } else {
                String::new()
            }
        ),
        Failure::Status(code) => format!(
            "could not {what}: the Hub answered HTTP {code} at {url}; try again later (rerunning skips the files already in --out and resumes partial ones in hf-hub's cache), or {env_hint}"
        ),
        Failure::Other(detail) => format!("could not {what} ({url}): {detail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::select::tests::{dataset_target, model_target};
    use crate::settings::DEFAULT_ENDPOINT;
    use std::path::PathBuf;

    #[test]
    fn failures_read_as_one_paragraph() {
        let settings = HubSettings {
            endpoint: DEFAULT_ENDPOINT.into(),
            cache_dir: PathBuf::from("/root/.cache/huggingface/hub"),
            token: None,
        };
        let t = dataset_target("main");
        let url = t.listing_url(&settings.endpoint);
        assert_eq!(
            url,
            "https://huggingface.co/api/datasets/wikimedia/wikipedia/revision/main"
        );
        assert_eq!(
            dataset_target(PARQUET_BRANCH).listing_url("https://h"),
            "https://h/api/datasets/wikimedia/wikipedia/revision/refs%2Fconvert%2Fparquet"
        );
        let offline = classify_ureq(&ureq::Error::HostNotFound);
        assert!(matches!(offline, Failure::Network(_)));
        let msg = failure_message("list the files", &url, &t, &settings, &offline);
        for needle in [
            url.as_str(),
            "check your network",
            "HF_ENDPOINT",
            "HF_HOME",
            "/root/.cache/huggingface",
        ] {
            assert!(msg.contains(needle), "{needle:?} missing from {msg}");
        }
        assert!(!msg.contains('\n'));

        let denied = classify_ureq(&ureq::Error::StatusCode(401));
        let msg = failure_message("list the files", &url, &t, &settings, &denied);
        assert!(
            msg.contains("HTTP 401") && msg.contains("HF_TOKEN") && msg.contains("gated"),
            "{msg}"
        );
        let msg = failure_message("list", &url, &t, &settings, &Failure::Status(404));
        assert!(msg.contains("--revision refs/convert/parquet"), "{msg}");
        let msg = failure_message(
            "list",
            &url,
            &model_target(),
            &settings,
            &Failure::Status(404),
        );
        assert!(!msg.contains("refs/convert"), "{msg}");
        let msg = failure_message(
            "get",
            &url,
            &t,
            &settings,
            &classify_api_error(&ApiError::TooManyRetries(Box::new(ApiError::RequestError(
                Box::new(ureq::Error::StatusCode(503)),
            )))),
        );
        assert!(
            msg.contains("HTTP 503") && msg.contains("try again later"),
            "{msg}"
        );
    }
}
