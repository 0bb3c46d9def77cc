//! Deterministic GUIDs for orchestrations.
//!
//! An orchestration cannot draw random ids: a replay would draw different ones. Instead
//! [`OrchestrationContext::new_guid`](super::OrchestrationContext::new_guid) makes a
//! *name-based* UUID (RFC 4122 version 5: SHA-1 of a namespace and a name) from what replay
//! reproduces exactly:
//!
//! ```text
//! name = "<instance id>_<current time as secs.nanos>_<n>"
//! ```
//!
//! where the time is the orchestration's current time and `n` counts the GUIDs the execution
//! drew before (0, 1, 2, ...). The namespace is the RFC's URL namespace. Different instances,
//! times or counters give different GUIDs; the same ones give the same GUID on every replay.

use netherite_core::{InstanceId, Timestamp};

/// RFC 4122's URL namespace, `6ba7b811-9dad-11d1-80b4-00c04fd430c8`.
const NAMESPACE: [u8; 16] = [
    0x6b, 0xa7, 0xb8, 0x11, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8,
];

/// The `counter`-th GUID of `instance` at time `now`, as 36 lowercase characters with dashes.
pub(crate) fn name_based_guid(instance: &InstanceId, now: Timestamp, counter: u64) -> String {
    let name = format!("{instance}_{now}_{counter}");
    format_uuid(uuid_v5(&NAMESPACE, name.as_bytes()))
}

/// A version 5 UUID: the first 16 bytes of SHA-1(namespace ++ name), with the version and
/// variant bits set.
fn uuid_v5(namespace: &[u8; 16], name: &[u8]) -> [u8; 16] {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(namespace);
    sha.update(name);
    let digest = sha.digest().bytes();

    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x50;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

fn format_uuid(bytes: [u8; 16]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The construction is standard UUIDv5: the RFC's example name in the DNS namespace gives
    /// the value every UUID library gives for it.
    #[test]
    fn matches_the_uuid_v5_reference_value() {
        let dns = [
            0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1, 0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4,
            0x30, 0xc8,
        ];
        let uuid = format_uuid(uuid_v5(&dns, b"python.org"));
        assert_eq!(uuid, "886313e1-3b8a-5372-9b90-0c9aee199e5d");
    }

    /// Same inputs, same GUID; any input changed, another GUID.
    #[test]
    fn guids_depend_on_instance_time_and_counter() {
        let (id, t) = (InstanceId::new("order-7"), Timestamp::new(1_700_000_000, 5));
        let guid = name_based_guid(&id, t, 0);
        assert_eq!(guid, name_based_guid(&id, t, 0));
        assert_eq!(guid.len(), 36);
        assert_eq!(&guid[14..15], "5", "version 5");

        assert_ne!(guid, name_based_guid(&id, t, 1));
        assert_ne!(guid, name_based_guid(&InstanceId::new("order-8"), t, 0));
        assert_ne!(
            guid,
            name_based_guid(&id, Timestamp::new(1_700_000_000, 6), 0)
        );
    }
}
