/* xo__fiber_switch_asm(void **save_sp, void *load_sp)
 *
 * Saves the callee-saved registers of the System V AMD64 ABI (rbx, rbp, r12-r15) plus the x87 control word and
 * MXCSR control bits on the current stack, stores the stack pointer in *save_sp, loads load_sp and restores the
 * same set from there. A hand-written switch because glibc's swapcontext makes a sigprocmask system call on every
 * switch (measured: ~0.3 us vs ~5 ns here), which alone would blow the 0.5 us actor ping-pong budget.
 *
 * A new fiber's stack is prepared by fiber.c so that the first switch "returns" into xo__fiber_entry_asm with the
 * entry function in r12 and its argument in r13. */
    .text
    .globl xo__fiber_switch_asm
    .hidden xo__fiber_switch_asm
    .type xo__fiber_switch_asm, @function
xo__fiber_switch_asm:
    .cfi_startproc
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    subq $8, %rsp
    stmxcsr (%rsp)
    fnstcw 4(%rsp)
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    ldmxcsr (%rsp)
    fldcw 4(%rsp)
    addq $8, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size xo__fiber_switch_asm, .-xo__fiber_switch_asm

    .globl xo__fiber_entry_asm
    .hidden xo__fiber_entry_asm
    .type xo__fiber_entry_asm, @function
xo__fiber_entry_asm:
    .cfi_startproc
    .cfi_undefined rip
    movq %r13, %rdi
    callq *%r12
    ud2
    .cfi_endproc
    .size xo__fiber_entry_asm, .-xo__fiber_entry_asm

    .section .note.GNU-stack,"",@progbits
