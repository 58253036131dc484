//! The PKI mtlscope needs: loading identities and CA files, the dev PKI, the local CA that issues
//! client-facing leaves, and certificate inspection.

pub mod load;
