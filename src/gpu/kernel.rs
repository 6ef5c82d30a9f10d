//! The closed set of compute kernels: one variant per shader file and binding form.
//!
//! Shader file = entry point = pipeline label = `Kernel::name()`. Each source is the shared
//! prelude (`shaders/common/*.wgsl`, joined at compile time: WGSL has no `#include`) followed by
//! the kernel's own file. The conv kernels come twice: reading storage buffers, and (suffix
//! `_textured`) reading their activation and packed weights as texels, for adapters where a
//! texel fetch costs less than a buffer load. The 1x1 passes also come as `_subgroup`: the
//! textured kernels sharing their weight (or, for the weight gradient, dy) loads across the
//! subgroup (adapter feature `SUBGROUP`, requested whenever offered). All three passes come as
//! `_workgroup`: the buffer kernels staging shared operands in workgroup memory (shaped for
//! GPUs). Weight packing writes either storage through the `packed_buffer_out` or
//! `packed_texture_out` prelude (the paired packing through `packed_pair_buffer_out` or
//! `packed_pair_texture_out`). `bindings()` is the contract with the shader's `@binding`s:
//! binding 0 is always the uniform `Params`, then the inputs (read-only), then the outputs
//! (read-write).
//! The naga test validates every source in `Kernel::ALL` without a GPU.

/// How a shader accesses one binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// `var<uniform>`: the kernel's `Params`.
    Uniform,
    /// `var<storage, read>`.
    Read,
    /// `var<storage, read_write>`.
    ReadWrite,
    /// `texture_storage_2d<rgba32float, read>` (a texture-backed tensor, read with `textureLoad`).
    TextureRead,
    /// `texture_storage_2d<rgba32float, write>` (a texture-backed tensor, written with `textureStore`).
    TextureWrite,
}

macro_rules! kernels {
    ($($variant:ident => $name:literal, [$($prelude:literal),*], ($($access:ident),*);)*) => {
        /// One WGSL compute kernel.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Kernel {
            $($variant,)*
        }

        impl Kernel {
            /// Every kernel, for sweeping tests.
            pub const ALL: &'static [Kernel] = &[$(Kernel::$variant,)*];

            /// The entry point, the shader file stem and the pipeline label.
            pub fn name(self) -> &'static str {
                match self {
                    $(Kernel::$variant => $name,)*
                }
            }

            /// The complete WGSL source: prelude files, then the kernel's own file.
            pub fn source(self) -> &'static str {
                match self {
                    $(Kernel::$variant => concat!(
                        $(include_str!(concat!("../../shaders/common/", $prelude, ".wgsl")),)*
                        include_str!(concat!("../../shaders/", $name, ".wgsl"))
                    ),)*
                }
            }

            /// The `shaders/common` files the source starts with.
            pub fn preludes(self) -> &'static [&'static str] {
                match self {
                    $(Kernel::$variant => &[$($prelude,)*],)*
                }
            }

            /// Whether the kernel needs the adapter's subgroups ([`super::Gpu::shares_subgroups`]).
            pub fn needs_subgroups(self) -> bool {
                self.name().ends_with("_subgroup")
            }

            /// The access of each binding, in binding order.
            pub fn bindings(self) -> &'static [Access] {
                match self {
                    $(Kernel::$variant => &[Access::Uniform, $(Access::$access,)*],)*
                }
            }
        }
    };
}

kernels! {
    GroupedConvPackWeight => "grouped_conv_pack_weight", ["index", "packed_buffer_out"], (Read, ReadWrite);
    GroupedConvPackWeightTexture => "grouped_conv_pack_weight", ["index", "packed_texture_out"], (Read, TextureWrite);
    GroupedConvPackWeightPair => "grouped_conv_pack_weight_pair", ["index", "packed_pair_buffer_out"], (Read, ReadWrite, ReadWrite);
    GroupedConvPackWeightPairTexture => "grouped_conv_pack_weight_pair", ["index", "packed_pair_texture_out"], (Read, TextureWrite, TextureWrite);
    GroupedConvPackActivation => "grouped_conv_pack_activation", ["index", "activation"], (Read, TextureWrite, Read);
    GroupedConvForward => "grouped_conv_forward", ["index", "conv_params", "conv_forward_tile", "packed_buffer"], (Read, Read, Read, ReadWrite);
    GroupedConvForwardTextured => "grouped_conv_forward_textured", ["index", "conv_params", "conv_forward_tile", "texels"], (TextureRead, TextureRead, Read, ReadWrite);
    GroupedConvForwardSubgroup => "grouped_conv_forward_subgroup", ["index", "conv_params", "conv_forward_tile", "texels", "subgroup_quad"], (TextureRead, TextureRead, Read, ReadWrite);
    GroupedConvForwardWorkgroup => "grouped_conv_forward_workgroup", ["index", "conv_params", "conv_forward_tile", "packed_buffer"], (Read, Read, Read, ReadWrite);
    GroupedConvBackwardInput => "grouped_conv_backward_input", ["index", "conv_params", "conv_backward_input_tile", "packed_buffer"], (Read, Read, ReadWrite);
    GroupedConvBackwardInputTextured => "grouped_conv_backward_input_textured", ["index", "conv_params", "conv_backward_input_tile", "texels"], (TextureRead, TextureRead, ReadWrite);
    GroupedConvBackwardInputSubgroup => "grouped_conv_backward_input_subgroup", ["index", "conv_params", "conv_backward_input_tile", "texels", "subgroup_quad"], (TextureRead, TextureRead, ReadWrite);
    GroupedConvBackwardInputWorkgroup => "grouped_conv_backward_input_workgroup", ["index", "conv_params", "conv_backward_input_tile", "packed_buffer"], (Read, Read, ReadWrite);
    GroupedConvBackwardWeight => "grouped_conv_backward_weight", ["index", "conv_params"], (Read, Read, ReadWrite);
    GroupedConvBackwardWeightTextured => "grouped_conv_backward_weight_textured", ["index", "conv_params", "conv_backward_weight_tile", "texels"], (TextureRead, TextureRead, ReadWrite, ReadWrite);
    GroupedConvBackwardWeightSubgroup => "grouped_conv_backward_weight_subgroup", ["index", "conv_params", "conv_backward_weight_tile", "texels"], (TextureRead, TextureRead, ReadWrite, ReadWrite);
    GroupedConvBackwardWeightWorkgroup => "grouped_conv_backward_weight_workgroup", ["index", "conv_params"], (Read, Read, ReadWrite);
    GroupedConvBackwardBias => "grouped_conv_backward_bias", ["index", "conv_params"], (Read, ReadWrite);
    SumPartials => "sum_partials", ["index"], (Read, ReadWrite);
    WeightStdForward => "weight_std_forward", ["index", "weight_std_params", "reduce"], (Read, Read, ReadWrite, ReadWrite);
    WeightStdBackward => "weight_std_backward", ["index", "weight_std_params", "reduce"], (Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite);
    ScaledActForward => "scaled_act_forward", ["index", "scaled_act_params", "activation"], (Read, ReadWrite);
    ScaledActBackward => "scaled_act_backward", ["index", "scaled_act_params", "activation"], (Read, Read, ReadWrite);
    AvgPoolForward => "avg_pool_forward", ["index", "avg_pool_params"], (Read, ReadWrite);
    AvgPoolBackward => "avg_pool_backward", ["index", "avg_pool_params"], (Read, ReadWrite);
    GlobalPoolForward => "global_pool_forward", ["index", "global_pool_params"], (Read, ReadWrite);
    GlobalPoolBackward => "global_pool_backward", ["index", "global_pool_params"], (Read, ReadWrite);
    SeGateForward => "se_gate_forward", ["index", "se_gate_params"], (Read, Read, ReadWrite);
    SeGateBackward => "se_gate_backward", ["index", "se_gate_params"], (Read, Read, Read, ReadWrite, ReadWrite);
    ResidualForward => "residual_forward", ["index", "residual_params"], (Read, Read, Read, ReadWrite);
    ResidualBackward => "residual_backward", ["index", "residual_params", "reduce"], (Read, Read, Read, ReadWrite, ReadWrite);
    SeResidualForward => "se_residual_forward", ["index", "se_residual_params"], (Read, Read, Read, Read, ReadWrite);
    SeResidualBackward => "se_residual_backward", ["index", "se_residual_params", "reduce"], (Read, Read, Read, Read, ReadWrite, ReadWrite, ReadWrite);
    LinearForward => "linear_forward", ["index", "linear_params"], (Read, Read, Read, ReadWrite);
    LinearBackwardInput => "linear_backward_input", ["index", "linear_params"], (Read, Read, ReadWrite);
    LinearBackwardWeight => "linear_backward_weight", ["index", "linear_params"], (Read, Read, ReadWrite, ReadWrite);
    SoftmaxXentFused => "softmax_xent_fused", ["index"], (Read, Read, ReadWrite, ReadWrite);
    DropoutApply => "dropout_apply", ["index", "philox", "step_info"], (Read, Read, ReadWrite);
    SgdUpdate => "sgd_update", ["index", "step_info"], (Read, Read, ReadWrite, ReadWrite);
    SgdAgcUpdate => "sgd_agc_update", ["index", "step_info", "reduce"], (Read, Read, ReadWrite, ReadWrite, Read, Read);
    EmaUpdate => "ema_update", ["index", "step_info"], (Read, Read, ReadWrite);
    GradAccumulate => "grad_accumulate", ["index", "step_info"], (Read, Read, ReadWrite);
}
