//! RFC 4733 telephone-event: receive (one digit per event, however many end packets) and
//! send (for the test caller).
//!
//! OWNER: media-rtp helper.
