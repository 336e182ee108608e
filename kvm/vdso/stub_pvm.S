/* The kvm-pvm system-call stub, placed at stubAddr (0xA000). Assembled by build.sh into
 * stub_pvm.bin, which the Go package embeds. On kvm-pvm `syscall` jumps to MSR_LSTAR but stays at
 * CPL3, so everything here runs with the program's privileges: it can do nothing the program
 * could not do itself, and the VMM trusts nothing it leaves in memory.
 *
 * stubAddr+0  (the exit):  a store to the unbacked page at 0xFFFFF000 -> KVM_EXIT_MMIO. The VMM
 *             serves the call from the registers and returns by setting RIP=RCX, RFLAGS=R11.
 * stubAddr+16 (MSR_LSTAR): write(fd, buf, n) to an output stream is appended to the output ring
 *             at 0xF000 without leaving the guest; the VMM drains the ring at the next exit.
 *             Everything else, and any write the ring cannot take, goes to the exit.
 *
 * The VMM drains the ring only when the guest stopped outside entry..end (a deadline may stop it
 * mid-copy), so it never sees a half-written record or resets the tail under the stub's feet.
 *
 * Ring page (user-writable; the VMM bounds-checks all of it):
 *   +0 u64 limit   end of guest memory: buffers must lie in [0x10000, limit)
 *   +8 u64 tail    bytes used in the data area
 *   +16 u64 fdmask bit fd set: fd is an output stream the ring may take
 *   +24 data       records {u32 fd, u32 len, len bytes, padding to 8}
 */
        .intel_syntax noprefix
        .text
        .globl exit
exit:
        .byte 0xA3                      /* mov [0xFFFFF000], eax */
        .quad 0xFFFFF000
        .balign 16, 0xCC
        .globl entry
entry:
        cmp rax, 1                      /* write? */
        jne exit
        cmp rdi, 63
        ja exit
        cmp rdx, 2048                   /* big writes go straight to the VMM */
        ja exit
        lea rsp, [rsp-128]              /* keep out of the program's red zone */
        push rsi
        push rdi
        push rcx
        push r8
        mov r8d, 0xF000
        bt qword ptr [r8+16], rdi
        jnc slow
        cmp rsi, 0x10000
        jb slow
        mov rcx, rsi
        add rcx, rdx
        jc slow
        cmp rcx, [r8]
        ja slow
        mov rax, [r8+8]                 /* tail */
        cmp rax, 4096-24
        ja slow
        lea rcx, [rax+rdx+15]
        and rcx, -8                     /* new tail: header 8 + data, rounded to 8 */
        cmp rcx, 4096-24
        ja slow
        mov [r8+24+rax], edi
        mov [r8+28+rax], edx
        lea rdi, [r8+32+rax]
        push rcx
        mov rcx, rdx
        rep movsb
        pop rcx
        mov [r8+8], rcx                 /* publish the record once it is complete */
        mov rax, rdx                    /* write returns n */
        pop r8
        pop rcx
        pop rdi
        pop rsi
        push r11                        /* return as SYSRET would: RFLAGS from R11, RIP from RCX */
        popfq
        lea rsp, [rsp+128]
        jmp rcx
slow:
        pop r8
        pop rcx
        pop rdi
        pop rsi
        lea rsp, [rsp+128]
        mov eax, 1
        jmp exit
        .globl end
end:
