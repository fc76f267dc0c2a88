job "lonely" {
  datacenters = ["dc1"]
  type        = "service"
}
