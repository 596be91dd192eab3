"""The Istio tier: Istio's own analyzer (``istioctl analyze``, ``istioctl validate``) over every manifest meshkit
renders, offline, with the pinned istioctl of toolchain/build-istioctl.sh."""
