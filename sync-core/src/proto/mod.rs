//! The sans-IO transfer protocol (see the module docs once written).
