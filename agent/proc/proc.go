// Package proc tells processes apart beyond their number, and finds and stops process groups. A pid or
// process group number is reused once its process has ended, so a record that says "pid 4242" is
// trusted only together with the identity Identity gives: the boot the process runs in and its start
// time, which never repeat. The kernel uses it for the commands a crashed run left behind, the process
// integration for the processes it supervises across agent restarts.
package proc
