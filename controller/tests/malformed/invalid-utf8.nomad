job "web" {
  datacenters = ["dcÿþ1"]
}
