//! The transaction user: decides what to do with each request, and runs the IVR per call.
//! OWNER: integrator.
