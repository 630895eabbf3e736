"""The imperative side of image-gallery: ARM operations, SSH and WinRM transports, guest scripts, and the
Pulumi dynamic providers that run them. Everything here is usable and testable without the Pulumi engine."""
