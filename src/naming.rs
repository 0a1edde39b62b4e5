//! What kjenv writes into Kubernetes objects, decided once: the Job's `apiVersion` and `kind`,
//! the label keys, and how a Job (and its Secret) is named.

/// The API version of every Job kjenv submits.
pub const JOB_API_VERSION: &str = "batch/v1";

/// The kind of what kjenv submits.
pub const JOB_KIND: &str = "Job";

/// The label kjenv (and Prefect) put the flow run id under, on the Job, its pods and its Secret.
pub const FLOW_RUN_LABEL: &str = "flow_run_id";

/// The label holding the environment's `identifier_label`, on the Job and its pods.
pub const IDENTIFIER_LABEL: &str = "identifier";

/// The label that says kjenv made an object (the run's Secret).
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";

/// The longest Job name (it becomes the `job-name` label value, at most 63 characters).
pub const MAX_JOB_NAME: usize = 63;

/// The characters the API server draws `generateName` suffixes from (no vowels, no 0/1/3: no
/// words, no look-alikes), and the suffix's length.
const SUFFIX_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
const SUFFIX_LEN: usize = 5;

/// The name of the Secret holding a run's auth token.
pub fn secret_name(job_name: &str) -> String {
    format!("{job_name}-kjenv")
}

/// The name kjenv gives a Job whose spec names none (Prefect's `prefect-job-<8 hex>`).
pub fn default_job_name() -> String {
    format!("prefect-job-{}", random_hex8())
}

/// The name the API server would make of `generateName: prefix`: the prefix, cut to leave room,
/// and five characters of its alphabet. kjenv names such a Job itself, before the first POST, so
/// that `render()` shows what `execute()` posts, the Secret can be named after the Job, and a POST
/// retried after a lost answer meets the Job the first one made (409, adopted) instead of making
/// a second one.
pub fn generated_name(prefix: &str) -> String {
    let prefix: String = prefix.chars().take(MAX_JOB_NAME - SUFFIX_LEN).collect();
    let suffix: String = uuid::Uuid::new_v4().as_bytes()[..SUFFIX_LEN]
        .iter()
        .map(|b| SUFFIX_ALPHABET[usize::from(*b) % SUFFIX_ALPHABET.len()] as char)
        .collect();
    format!("{prefix}{suffix}")
}

/// `name-<8 hex>` for `unique_job_name=True`, cut so it fits in [`MAX_JOB_NAME`], without a
/// trailing `-` or `.` before the suffix.
pub fn unique_name(name: &str) -> String {
    let keep = MAX_JOB_NAME - 9;
    let mut cut = keep.min(name.len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    let base = name[..cut].trim_end_matches(['-', '.']);
    format!("{base}-{}", random_hex8())
}

/// Check a Job's name as the API server will: a DNS-1123 label of at most [`MAX_JOB_NAME`]
/// characters (it becomes the pods' `job-name` label value), so that an invalid name is refused
/// before any request rather than by a 422 after the first. The Secret's name
/// ([`secret_name`]) then fits too.
///
/// # Errors
/// What is wrong with the name, for a message about `metadata.name`.
pub fn check_job_name(name: &str) -> Result<(), String> {
    if name.len() > MAX_JOB_NAME {
        return Err(format!(
            "a Job's name has at most {MAX_JOB_NAME} characters (it becomes the pods' job-name \
             label), got {} ({}); shorten it or use generateName",
            name.len(),
            crate::spec::names::quote(name)
        ));
    }
    crate::spec::names::dns_label(name)
}

fn random_hex8() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_name_has_the_servers_shape() {
        let name = generated_name("flow-");
        assert!(name.starts_with("flow-") && name.len() == 10, "{name}");
        assert!(name[5..].bytes().all(|b| SUFFIX_ALPHABET.contains(&b)));
        assert_eq!(generated_name(&"é".repeat(70)).chars().count(), 63);
    }

    #[test]
    fn job_names_are_checked_as_the_api_server_does() {
        assert!(check_job_name("flow-1").is_ok());
        assert!(check_job_name(&"a".repeat(63)).is_ok());
        let long = check_job_name(&"a".repeat(64)).unwrap_err();
        assert!(long.contains("at most 63"), "{long}");
        assert!(check_job_name("Flow_1").is_err());
        assert!(secret_name(&"a".repeat(63)).len() <= 253);
    }

    #[test]
    fn a_unique_name_fits() {
        let name = unique_name(&format!("{}-b", "a".repeat(53)));
        assert!(!name.contains("--") && name.len() <= MAX_JOB_NAME, "{name}");
        assert!(unique_name(&"é".repeat(40)).len() <= MAX_JOB_NAME);
    }
}
