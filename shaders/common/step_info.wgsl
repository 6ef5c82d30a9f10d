// What changes at every training step, in one small buffer the trainer writes once per step
// (ops::step_info::StepInfo mirrors it): the learning rate of the schedule, the EMA decay, and
// the counters that make every step's dropout masks new.
struct StepInfo {
    lr: f32,
    ema_decay: f32,
    step: u32,
    micro: u32,
}
