//! Tensors larger than one storage binding. A second context caps the binding size far below
//! lavapipe's 128 MiB, so small tensors take the same split path a large batch takes there:
//! the split results must match the reference, and a sample too large to bind at all must be
//! a typed error before any work.

use crate::support::{check, gpu_or_skip, poisoned, read, round_f32, upload, Rng};
use nfnet::gpu::{Gpu, GpuOptions, GpuTensor};
use nfnet::ops::grouped_conv::{self, standalone, Conv2d, Storage};
use nfnet::ops::residual::{self, Residual};
use nfnet::ops::scaled_act::{self, Activation, ScaledAct};
use nfnet::Error;

/// 7 KiB per storage binding. A batch is split at sample boundaries that are also offsets the
/// device can bind: under WebGPU's default 256-byte offset alignment the conv case's 864-byte
/// samples go 8 at a time (6,912 bytes), so the cap leaves room for that and still splits 9.
const CAP: u64 = 7 * 1024;

/// The capped context.
fn small_gpu() -> Option<Gpu> {
    gpu_or_skip()?;
    Some(
        Gpu::with_options(&GpuOptions {
            max_storage_binding: Some(CAP),
            ..Default::default()
        })
        .expect("a capped device"),
    )
}

/// The textured conv kernels split the same way (each dispatch told its first image).
#[test]
fn split_textured_convs_match_the_reference() {
    let Some(gpu) = small_gpu() else { return };
    split_convs(&gpu, Storage::Texture);
}

#[test]
fn split_dispatches_match_the_reference() {
    let Some(gpu) = small_gpu() else { return };
    split_convs(&gpu, Storage::Buffer);
    let mut rng = Rng::new(Rng::fresh_seed());
    // Elementwise ops split by elements, reductions keep one partial per workgroup across pieces.
    let n = 5000;
    let act = ScaledAct {
        act: Activation::Gelu,
        gamma: Activation::Gelu.nfnet_gamma(),
    };
    let v = round_f32(&rng.normal(n));
    // r leans on v, so the skip-gain gradient (one sum of n products) does not cancel away.
    let r = round_f32(&rng.normal(n).iter().zip(&v).map(|(a, b)| a + 0.5 * b).collect::<Vec<_>>());
    let (tv, tr, tout, tdr, tskip, tdskip) = (
        upload(&gpu, "v", &[n], &v),
        upload(&gpu, "r", &[n], &r),
        poisoned(&gpu, "out", &[n]),
        poisoned(&gpu, "dr", &[n]),
        upload(&gpu, "skip", &[], &[0.25]),
        poisoned(&gpu, "dskip", &[]),
    );
    let a = scaled_act::forward(&gpu, &act, &tv, &tout).unwrap();
    let res = Residual { alpha: 0.2 };
    let rb = residual::backward(&gpu, &res, &tv, &tr, Some((&tskip, &tdskip)), &tdr).unwrap();
    assert!(
        a.steps.len() > 1 && rb.steps.len() > 2,
        "the elementwise ops should have been split"
    );
    gpu.run(&[&a, &rb]).unwrap();
    check("split scaled_act", &read(&gpu, &tout), &scaled_act::cpu::forward(&act, &v), 1e-5);
    let (dr, _, dskip) = residual::cpu::backward(&res, &v, &r, Some(0.25));
    check("split residual dr", &read(&gpu, &tdr), &dr, 1e-5);
    check("split residual dgain", &read(&gpu, &tdskip), &[dskip], 1e-5);
}

#[test]
fn a_sample_too_large_for_one_binding_is_a_typed_error() {
    let Some(gpu) = small_gpu() else { return };
    // One sample of 2 x 32 x 32 floats is 8 KiB, more than the cap.
    let spec = Conv2d::same([2, 2, 32, 32], 2, 1, 1);
    let x = GpuTensor::zeros(&gpu, "big feature map", &spec.x_shape()).unwrap();
    let w = GpuTensor::zeros(&gpu, "w", &spec.w_shape()).unwrap();
    let y = GpuTensor::zeros(&gpu, "y", &spec.y_shape()).unwrap();
    match standalone::forward(&gpu, &spec, Storage::Buffer, &x, &w, None, &y) {
        Err(e @ Error::Limit { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("big feature map") && msg.contains("max_storage_buffer_binding_size") && msg.contains(&CAP.to_string()),
                "{msg}"
            );
        }
        other => panic!("expected a limit error, got {:?}", other.err()),
    }
}

/// A strided grouped conv whose batch takes several dispatches, its operands in `storage`,
/// against the reference.
fn split_convs(gpu: &Gpu, storage: Storage) {
    assert_eq!(gpu.limits.max_storage_buffer_binding_size, CAP);
    let mut rng = Rng::new(Rng::fresh_seed());
    // 6*6*6*4 = 864 bytes per sample in, 576 out: 9 samples need several dispatches.
    let spec = Conv2d::same([9, 6, 6, 6], 16, 3, 2).groups(2).with_bias(true);
    let x = round_f32(&rng.normal(spec.x_shape().iter().product()));
    let w = round_f32(&rng.normal(spec.w_shape().iter().product()));
    let b = round_f32(&rng.normal(spec.k));
    let dy = round_f32(&rng.normal(spec.y_shape().iter().product()));
    let (tx, tw, tb, tdy) = (
        upload(gpu, "x", &spec.x_shape(), &x),
        upload(gpu, "w", &spec.w_shape(), &w),
        upload(gpu, "b", &[16], &b),
        upload(gpu, "dy", &spec.y_shape(), &dy),
    );
    let (ty, tdx, tdw, tdb) = (
        poisoned(gpu, "y", &spec.y_shape()),
        poisoned(gpu, "dx", &spec.x_shape()),
        poisoned(gpu, "dw", &spec.w_shape()),
        poisoned(gpu, "db", &[16]),
    );
    let fwd = standalone::forward(gpu, &spec, storage, &tx, &tw, Some(&tb), &ty).unwrap();
    let bin = standalone::backward_input(gpu, &spec, storage, &tdy, &tw, &tdx, false).unwrap();
    let bw = standalone::backward_weight(gpu, &spec, storage, &tx, &tdy, &tdw, Some(&tdb)).unwrap();
    assert!(fwd.steps.len() > 1 && bin.steps.len() > 1, "the batch should have been split");
    gpu.run(&[&fwd, &bin, &bw]).unwrap();
    check(
        "split forward",
        &read(gpu, &ty),
        &grouped_conv::cpu::forward(&spec, &x, &w, Some(&b)),
        1e-5,
    );
    check(
        "split backward_input",
        &read(gpu, &tdx),
        &grouped_conv::cpu::backward_input(&spec, &dy, &w),
        1e-5,
    );
    let (dw, db) = grouped_conv::cpu::backward_weight(&spec, &x, &dy);
    check("split backward_weight", &read(gpu, &tdw), &dw, 1e-5);
    check("split backward_bias", &read(gpu, &tdb), &db, 1e-5);
}
