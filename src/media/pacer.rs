//! Sans-IO 20 ms pacer: frame n is due at `t0 + n·20 ms`, an absolute deadline, so the
//! outgoing stream never drifts however late a wake-up is.
//!
//! OWNER: media-rtp helper.
