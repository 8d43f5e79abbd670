//! The inference runtime: ONNX models on tract through one loader
//! ([`model::Model`]), signtop's own ops that tract's optimised graph is
//! rewritten to use (depthwise, 1x1 and patch convolutions, with the skip
//! adds and PReLUs after them folded in where they can be, PReLU, channel
//! moves, 2x2 max pools, a 1x1 expansion fused with the depthwise
//! convolution after it), and the thread pool they cut their work across.
//! It knows nothing of landmarks or signs: `landmarks` and `classify` both
//! load their models here.

pub mod channel_move;
pub mod conv_op;
pub mod depthwise;
pub mod direct_order;
pub mod expand_depthwise;
pub mod keep_layout;
pub mod max_pool;
pub mod model;
pub mod parallel;
pub mod patches;
pub mod pointwise;
pub mod prelu;
pub mod resize;
pub mod simd;

pub use model::{ChannelOrder, Model, ModelError, Rewrites};
pub use simd::Simd;
