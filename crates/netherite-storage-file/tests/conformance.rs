//! The core's `LogDevice` conformance suite, run against file devices.

use netherite_core::device::conformance;
use netherite_storage_file::FileDeviceOptions;
use netherite_storage_file::testing::FileFixture;

/// Every rule of the contract holds with the default layout, and no check is skipped.
#[tokio::test]
async fn default_layout_conforms() {
    let report = conformance::run(|| FileFixture::temporary(Default::default()).unwrap()).await;
    assert!(report.skipped().is_empty(), "{report}");
    println!("{report}");
}

/// Every rule holds when each 4 KiB page is a segment of its own, so that every multi-page
/// write and read of the suite crosses segment boundaries.
#[tokio::test]
async fn one_page_segments_conform() {
    let options = FileDeviceOptions::default().with_segment_bytes(4096);
    let report = conformance::run(|| FileFixture::temporary(options).unwrap()).await;
    assert!(report.skipped().is_empty(), "{report}");
}

/// Every rule holds for devices fenced by a lease, whose old owners are fenced by the epoch
/// alone: each new owner takes the lease over while the old handles stay open.
#[tokio::test]
async fn leased_devices_conform() {
    for segment_bytes in [4096, FileDeviceOptions::default().segment_bytes] {
        let options = FileDeviceOptions::default().with_segment_bytes(segment_bytes);
        let report = conformance::run(|| FileFixture::leased(options).unwrap()).await;
        assert!(report.skipped().is_empty(), "{report}");
    }
}
