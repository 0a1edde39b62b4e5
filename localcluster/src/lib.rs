//! A local Kubernetes API emulator: HTTPS API server, job controller and a process kubelet.
