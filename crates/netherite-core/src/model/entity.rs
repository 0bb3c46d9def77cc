//! Entity ids: `@name@key`, with the name lowercased and the key kept as given.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::InstanceId;

/// The address of an entity: a lowercased name and a case-sensitive key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EntityId {
    name: String,
    key: String,
}

/// Why a string is not a valid entity id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EntityIdError {
    /// The id does not start with `@` or has no second `@`.
    #[error("entity id {0:?} is not of the form @name@key")]
    Malformed(String),
    /// The name part is empty.
    #[error("entity id {0:?} has an empty name")]
    EmptyName(String),
}

impl EntityId {
    /// An entity id from a name (lowercased; it may not contain `@`) and a key.
    pub fn new(name: &str, key: impl Into<String>) -> Result<EntityId, EntityIdError> {
        let key = key.into();
        if name.is_empty() {
            return Err(EntityIdError::EmptyName(format!("@@{key}")));
        }
        if name.contains('@') {
            return Err(EntityIdError::Malformed(format!("@{name}@{key}")));
        }
        Ok(EntityId {
            name: name.to_lowercase(),
            key,
        })
    }

    /// Parses `@name@key`.
    pub fn parse(id: &str) -> Result<EntityId, EntityIdError> {
        let rest = id
            .strip_prefix('@')
            .ok_or_else(|| EntityIdError::Malformed(id.into()))?;
        let (name, key) = rest
            .split_once('@')
            .ok_or_else(|| EntityIdError::Malformed(id.into()))?;
        if name.is_empty() {
            return Err(EntityIdError::EmptyName(id.into()));
        }
        Ok(EntityId {
            name: name.to_lowercase(),
            key: key.to_string(),
        })
    }

    /// The entity's (lowercased) name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entity's key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The instance id that addresses this entity.
    pub fn instance_id(&self) -> InstanceId {
        InstanceId(self.to_string())
    }
}

impl fmt::Display for EntityId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "@{}@{}", self.name, self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_lowercases_name_and_keeps_key() {
        let id = EntityId::parse("@Counter@MyKey").unwrap();
        assert_eq!((id.name(), id.key()), ("counter", "MyKey"));
        assert_eq!(id.to_string(), "@counter@MyKey");
    }

    #[test]
    fn malformed_ids_are_rejected() {
        assert!(matches!(
            EntityId::parse("counter@x"),
            Err(EntityIdError::Malformed(_))
        ));
        assert!(matches!(
            EntityId::parse("@counter"),
            Err(EntityIdError::Malformed(_))
        ));
        assert!(matches!(
            EntityId::parse("@@x"),
            Err(EntityIdError::EmptyName(_))
        ));
        assert!(EntityId::new("a@b", "k").is_err());
    }
}
