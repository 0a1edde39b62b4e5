//! The resource kinds the local cluster serves, and how each is named on the wire (a leaf:
//! the store, the errors and the API all name kinds through it).

/// The resource kinds the local cluster serves.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub enum Kind {
    /// core/v1 Namespace (cluster-scoped).
    Namespace,
    /// core/v1 Pod.
    Pod,
    /// batch/v1 Job.
    Job,
    /// core/v1 Secret.
    Secret,
    /// core/v1 ConfigMap.
    ConfigMap,
    /// core/v1 Event.
    Event,
}

impl Kind {
    /// Every kind, in index order.
    pub const ALL: [Kind; 6] = [
        Kind::Namespace,
        Kind::Pod,
        Kind::Job,
        Kind::Secret,
        Kind::ConfigMap,
        Kind::Event,
    ];

    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The `kind` field, e.g. `Job`.
    pub fn kind(self) -> &'static str {
        match self {
            Kind::Namespace => "Namespace",
            Kind::Pod => "Pod",
            Kind::Job => "Job",
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
            Kind::Event => "Event",
        }
    }

    /// The list kind, e.g. `JobList`.
    pub fn list_kind(self) -> String {
        format!("{}List", self.kind())
    }

    /// The resource plural, e.g. `jobs`.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Namespace => "namespaces",
            Kind::Pod => "pods",
            Kind::Job => "jobs",
            Kind::Secret => "secrets",
            Kind::ConfigMap => "configmaps",
            Kind::Event => "events",
        }
    }

    /// The API group (`""` for core).
    pub fn group(self) -> &'static str {
        match self {
            Kind::Job => "batch",
            _ => "",
        }
    }

    /// The `apiVersion` field, e.g. `batch/v1`.
    pub fn api_version(self) -> &'static str {
        match self {
            Kind::Job => "batch/v1",
            _ => "v1",
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(self, Kind::Namespace)
    }

    /// `jobs.batch` / `pods`, as error messages name the resource.
    pub fn qualified_plural(self) -> String {
        if self.group().is_empty() {
            self.plural().to_string()
        } else {
            format!("{}.{}", self.plural(), self.group())
        }
    }

    /// `Job.batch` / `Pod`, as Invalid messages name the kind.
    pub fn qualified_kind(self) -> String {
        if self.group().is_empty() {
            self.kind().to_string()
        } else {
            format!("{}.{}", self.kind(), self.group())
        }
    }

    /// The kind served under `group` with this plural, if any.
    pub fn from_plural(group: &str, plural: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|k| k.group() == group && k.plural() == plural)
    }

    /// Whether `metadata.generation` is maintained for this kind.
    pub(crate) fn has_generation(self) -> bool {
        matches!(self, Kind::Job | Kind::Pod)
    }
}
