//! Our `.proto` against the reference protocol, descriptor by descriptor.
//!
//! Both files are compiled with `protox` into descriptor sets, and everything that reaches the
//! wire or names a call is compared: each message's fields (name, number, type, label, type
//! name, oneof membership, JSON name), its oneofs, its reserved numbers and nested map entries;
//! each enum's values; the service's methods (name, request and response types, streaming on
//! either side); and the absence of a package. Comments, declaration order and options that
//! only steer other languages' code generators are ours to choose and are not compared.
//!
//! The reference lives in the shared folder beside the repository (`../shared` from the
//! repository root, or one level further up for a worktree kept in a subfolder). When it is
//! not there, the comparison is skipped with a message that says where it looked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use prost_types::{
    DescriptorProto, EnumDescriptorProto, FileDescriptorProto, MethodDescriptorProto,
    ServiceDescriptorProto,
};

const OURS: &str = "durabletask.proto";
const REFERENCE: &str = "orchestrator_service.proto";
const REFERENCE_DIR: &str = "shared/reference/durabletask-protobuf/protos";

fn crate_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where the reference may be: beside the repository root, or beside its parent.
fn reference_candidates() -> Vec<PathBuf> {
    let repo_root = crate_dir().join("../..");
    vec![
        repo_root.join("..").join(REFERENCE_DIR),
        repo_root.join("../..").join(REFERENCE_DIR),
    ]
}

/// Compiles `file` found in `dir` and returns its own descriptor (imports left out).
fn compile(dir: &Path, file: &str) -> FileDescriptorProto {
    let set = protox::compile([file], [dir]).expect("the proto compiles");
    set.file
        .into_iter()
        .find(|f| f.name() == file)
        .expect("the compiled set holds the file itself")
}

/// Every message by its full name, nested ones (map entries) included.
fn messages(file: &FileDescriptorProto) -> BTreeMap<String, &DescriptorProto> {
    fn walk<'a>(
        prefix: &str,
        list: &'a [DescriptorProto],
        out: &mut BTreeMap<String, &'a DescriptorProto>,
    ) {
        for message in list {
            let name = format!("{prefix}.{}", message.name());
            walk(&name, &message.nested_type, out);
            out.insert(name, message);
        }
    }
    let mut out = BTreeMap::new();
    walk("", &file.message_type, &mut out);
    out
}

/// Every enum by its full name, nested ones included.
fn enums(file: &FileDescriptorProto) -> BTreeMap<String, &EnumDescriptorProto> {
    let mut out: BTreeMap<_, _> = file
        .enum_type
        .iter()
        .map(|e| (format!(".{}", e.name()), e))
        .collect();
    for (name, message) in messages(file) {
        out.extend(
            message
                .enum_type
                .iter()
                .map(|e| (format!("{name}.{}", e.name()), e)),
        );
    }
    out
}

/// What the wire sees of a message: one line per field, oneof and reserved range.
fn message_facts(name: &str, message: &DescriptorProto) -> Vec<String> {
    let oneof_name =
        |index: Option<i32>| index.map(|i| message.oneof_decl[i as usize].name().to_owned());
    let mut facts: Vec<String> = message
        .field
        .iter()
        .map(|f| {
            format!(
                "message {name}: field {} = {}, type {:?}, label {:?}, type_name {:?}, \
                 oneof {:?}, json {:?}, proto3_optional {:?}",
                f.name(),
                f.number(),
                f.r#type(),
                f.label(),
                f.type_name(),
                oneof_name(f.oneof_index),
                f.json_name(),
                f.proto3_optional,
            )
        })
        .collect();
    let mut rest: Vec<String> = (message.oneof_decl.iter())
        .map(|o| format!("oneof {}", o.name()))
        .collect();
    let ranges = message.reserved_range.iter();
    rest.extend(ranges.map(|r| format!("reserved {}..{}", r.start(), r.end())));
    rest.extend(
        message
            .reserved_name
            .iter()
            .map(|n| format!("reserved {n:?}")),
    );
    let map_entry = message.options.as_ref().and_then(|o| o.map_entry);
    rest.push(format!("map_entry {map_entry:?}"));

    facts.extend(rest.into_iter().map(|f| format!("message {name}: {f}")));
    facts
}

/// Everything in a compiled file that reaches the wire or names a call, one fact per line.
fn wire_facts(file: &FileDescriptorProto) -> BTreeSet<String> {
    let mut facts = BTreeSet::from([format!(
        "package {:?}, syntax {:?}",
        file.package, file.syntax
    )]);
    for (name, message) in messages(file) {
        facts.extend(message_facts(&name, message));
    }
    for (name, e) in enums(file) {
        facts.extend(
            e.value
                .iter()
                .map(|v| format!("enum {name}: {} = {}", v.name(), v.number())),
        );
    }
    for service in &file.service {
        facts.extend(service.method.iter().map(|m| method_fact(service, m)));
    }
    facts
}

fn method_fact(service: &ServiceDescriptorProto, m: &MethodDescriptorProto) -> String {
    let stream = |on: bool| if on { "stream " } else { "" };
    format!(
        "service {}: rpc {}({}{}) returns ({}{})",
        service.name(),
        m.name(),
        stream(m.client_streaming()),
        m.input_type(),
        stream(m.server_streaming()),
        m.output_type(),
    )
}

/// Every difference on the wire between two compiled files, as facts only one of them has.
fn wire_differences(ours: &FileDescriptorProto, theirs: &FileDescriptorProto) -> Vec<String> {
    let (ours, theirs) = (wire_facts(ours), wire_facts(theirs));
    let only_ours = ours
        .difference(&theirs)
        .map(|f| format!("only ours:      {f}"));
    let only_theirs = theirs
        .difference(&ours)
        .map(|f| format!("only reference: {f}"));
    only_theirs.chain(only_ours).collect()
}

/// Our proto speaks exactly the reference protocol: same messages, fields, enums and calls.
#[test]
fn our_proto_is_wire_identical_to_the_reference() {
    let candidates = reference_candidates();
    let Some(reference_dir) = candidates.iter().find(|d| d.join(REFERENCE).is_file()) else {
        println!("skipped: the reference {REFERENCE} is not in any of {candidates:?}");
        return;
    };

    let ours = compile(&crate_dir().join("proto"), OURS);
    let theirs = compile(reference_dir, REFERENCE);
    let differences = wire_differences(&ours, &theirs);
    assert!(
        differences.is_empty(),
        "wire differences:\n{}",
        differences.join("\n")
    );

    // The comparison saw the real thing, not two empty files.
    assert!(messages(&theirs).len() > 100);
    assert_eq!(theirs.service.first().map(|s| s.method.len()), Some(29));
}

/// The comparison notices a change: a renumbered field, a renamed method, a lost stream flag.
#[test]
fn a_changed_descriptor_is_a_difference() {
    let ours = compile(&crate_dir().join("proto"), OURS);
    assert!(wire_differences(&ours, &ours).is_empty());

    let mut changed = ours.clone();
    let event = changed
        .message_type
        .iter_mut()
        .find(|m| m.name() == "HistoryEvent");
    event.expect("HistoryEvent is declared").field[0].number = Some(99);
    let service = &mut changed.service[0];
    service.method[0].name = Some("Hi".into());
    let stream = service
        .method
        .iter_mut()
        .find(|m| m.name() == "GetWorkItems");
    stream.expect("GetWorkItems is declared").server_streaming = Some(false);

    let differences = wire_differences(&changed, &ours);
    let expected = [
        "only reference: message .HistoryEvent: field eventId = 1,",
        "only reference: service TaskHubSidecarService: rpc GetWorkItems(",
        "only reference: service TaskHubSidecarService: rpc Hello(",
        "only ours:      message .HistoryEvent: field eventId = 99,",
        "only ours:      service TaskHubSidecarService: rpc GetWorkItems(",
        "only ours:      service TaskHubSidecarService: rpc Hi(",
    ];
    assert_eq!(differences.len(), expected.len(), "{differences:#?}");
    for (difference, start) in differences.iter().zip(expected) {
        assert!(
            difference.starts_with(start),
            "{difference} does not start with {start}"
        );
    }
}

/// With no package, every call's path is the bare service name and the method.
#[test]
fn calls_are_routed_under_the_bare_service_name() {
    let ours = compile(&crate_dir().join("proto"), OURS);
    assert_eq!(ours.package, None);
    assert_eq!(
        netherite_server::pb::task_hub_sidecar_service_server::SERVICE_NAME,
        "TaskHubSidecarService"
    );
}
