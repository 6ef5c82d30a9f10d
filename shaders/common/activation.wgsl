// Activation functions and their derivatives, shared by scaled_act_forward and _backward.
// Codes (ops::scaled_act::Activation): 0 identity, 1 relu, 2 gelu (exact, erf), 3 gelu (tanh
// approximation, as jax.nn.gelu), 4 silu.

const SQRT_HALF: f32 = 0.70710678118654752;
const SQRT_2_OVER_PI: f32 = 0.79788456080286536;
const INV_SQRT_2PI: f32 = 0.39894228040143268;
const GELU_TANH_C: f32 = 0.044715;

// erfc(z) for z >= 0, fractional error below 1.2e-7 (Numerical Recipes' Chebyshev fit, erfcc).
fn erfc_pos(z: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (-0.18628806
        + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277))))))));
    return t * exp(poly);
}

// The standard normal CDF Phi(x) = erfc(-x / sqrt 2) / 2, accurate in both tails.
fn normal_cdf(x: f32) -> f32 {
    let e = erfc_pos(abs(x) * SQRT_HALF);
    return select(1.0 - 0.5 * e, 0.5 * e, x < 0.0);
}

// tanh that saturates cleanly to +-1 (exp overflow gives 1 - 0, never inf / inf).
fn tanh_stable(u: f32) -> f32 {
    let t = 1.0 - 2.0 / (exp(2.0 * abs(u)) + 1.0);
    return select(t, -t, u < 0.0);
}

fn sigmoid(x: f32) -> f32 {
    return 1.0 / (1.0 + exp(-x));
}

fn activation(code: u32, x: f32) -> f32 {
    switch code {
        case 1u: { return max(x, 0.0); }
        case 2u: { return x * normal_cdf(x); }
        case 3u: {
            let u = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
            return 0.5 * x * (1.0 + tanh_stable(u));
        }
        case 4u: { return x * sigmoid(x); }
        default: { return x; }
    }
}

// d activation(x) / dx. relu'(0) = 0, as in PyTorch.
fn activation_grad(code: u32, x: f32) -> f32 {
    switch code {
        case 1u: { return select(0.0, 1.0, x > 0.0); }
        case 2u: { return normal_cdf(x) + x * INV_SQRT_2PI * exp(-0.5 * x * x); }
        case 3u: {
            let u = SQRT_2_OVER_PI * (x + GELU_TANH_C * x * x * x);
            let t = tanh_stable(u);
            let du = SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_TANH_C * x * x);
            return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du;
        }
        case 4u: {
            let sg = sigmoid(x);
            return sg * (1.0 + x * (1.0 - sg));
        }
        default: { return 1.0; }
    }
}

// g * activation'(x): the gradient g = dy * gamma taken back through the activation. relu
// passes g where x > 0 and +0 elsewhere (PyTorch's threshold_backward), as a select: as a
// product, one compilation could give dy * 0 = -0 and another fold it to +0.
fn activation_backward(code: u32, x: f32, g: f32) -> f32 {
    if (code == 1u) {
        return select(0.0, g, x > 0.0);
    }
    return g * activation_grad(code, x);
}
