//! The socket driver around the sans-IO transaction layer. OWNER: integrator.
