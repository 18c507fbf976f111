//! The closed vocabularies of `EVENT-SCHEMA.md` §1 with their wire names: what events, leaves,
//! search filters and findings spell the same everywhere.

/// What happened to the targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Create,
    Read,
    Update,
    Delete,
    List,
    Search,
    Export,
    Login,
    Logout,
    Grant,
    Revoke,
    Configure,
    Other,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ActorType {
    User,
    Admin,
    Service,
    System,
    ApiKey,
    Anonymous,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    Success,
    Failure,
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum Severity {
    #[default]
    Info,
    Low,
    Medium,
    High,
    Critical,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataClass {
    Pii,
    Phi,
    Pci,
    Financial,
    Secret,
}

/// A closed vocabulary: every variant and its wire name.
pub trait WireName: Copy + 'static {
    const ALL: &'static [Self];
    fn wire_name(self) -> &'static str;
    fn from_wire_name(name: &str) -> Option<Self>;

    /// Every wire name, in schema order.
    fn names() -> Vec<&'static str> {
        Self::ALL.iter().map(|variant| variant.wire_name()).collect()
    }
}

macro_rules! wire_names {
    ($ty:ty { $($variant:ident = $name:literal),* $(,)? }) => {
        impl WireName for $ty {
            const ALL: &'static [$ty] = <$ty>::ALL;
            fn wire_name(self) -> &'static str {
                self.as_str()
            }
            fn from_wire_name(name: &str) -> Option<$ty> {
                <$ty>::parse(name)
            }
        }

        impl $ty {
            /// Every variant, in schema order.
            pub const ALL: &'static [$ty] = &[$(<$ty>::$variant),*];

            /// The name used on the wire and in leaves.
            pub fn as_str(self) -> &'static str {
                match self { $(<$ty>::$variant => $name),* }
            }

            /// The variant for a wire name.
            pub fn parse(name: &str) -> Option<$ty> {
                match name { $($name => Some(<$ty>::$variant),)* _ => None }
            }
        }
    };
}

wire_names!(Action {
    Create = "create", Read = "read", Update = "update", Delete = "delete", List = "list", Search = "search",
    Export = "export", Login = "login", Logout = "logout", Grant = "grant", Revoke = "revoke",
    Configure = "configure", Other = "other",
});
wire_names!(ActorType {
    User = "user", Admin = "admin", Service = "service", System = "system", ApiKey = "api_key",
    Anonymous = "anonymous",
});
wire_names!(Outcome { Success = "success", Failure = "failure", Unknown = "unknown" });
wire_names!(Severity { Info = "info", Low = "low", Medium = "medium", High = "high", Critical = "critical" });
wire_names!(DataClass { Pii = "pii", Phi = "phi", Pci = "pci", Financial = "financial", Secret = "secret" });

impl Action {
    /// Actions that read data (a purpose may be required when the data is personal).
    pub fn is_read(self) -> bool {
        matches!(self, Action::Read | Action::List | Action::Search | Action::Export)
    }

    /// Actions that change a record and so must say what changed.
    pub fn changes_record(self) -> bool {
        matches!(self, Action::Create | Action::Update | Action::Delete)
    }
}
