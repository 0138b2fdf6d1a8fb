//! Integer-only DQN inference for microcontrollers.
#![no_std]
