package kvm
var debugTrace = false
