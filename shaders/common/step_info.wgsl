// What changes at every training step, in one small buffer the trainer writes once per step
// (ops::step_info::StepInfo mirrors it): the learning rate of the schedule, the EMA decay, and
// the counters: the step, the micro-batch on this device and the pass among all devices' (dropout
// masks follow the global sample).
struct StepInfo {
    lr: f32,
    ema_decay: f32,
    step: u32,
    micro: u32,
    pass_index: u32,
}
