//! Tiers: what a user may ask for and which queue serves them.

use serde::{Deserialize, Serialize};

/// A user's service level, carried in their token.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Bar precision, smallest quotas.
    Basic,
    /// Adds hybrid precision.
    Pro,
    /// Adds tick precision; served first.
    Elite,
}

impl Tier {
    /// Every tier, most important first (the order workers serve them in).
    pub const ALL: [Tier; 3] = [Tier::Elite, Tier::Pro, Tier::Basic];

    /// The name used in tokens, the database and queue names.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Basic => "basic",
            Tier::Pro => "pro",
            Tier::Elite => "elite",
        }
    }
}

impl std::fmt::Display for Tier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Tier {
    type Err = String;

    fn from_str(s: &str) -> Result<Tier, String> {
        match s {
            "basic" => Ok(Tier::Basic),
            "pro" => Ok(Tier::Pro),
            "elite" => Ok(Tier::Elite),
            _ => Err(format!("unknown tier '{s}'; expected basic, pro or elite")),
        }
    }
}
