# Found by cargo fuzz (oom, 2.3 GB): nested dynamic blocks each building a range(500) list.
job "webcount = 1.5" {
  group "web" {
    network {
      dynamic "port" {
        for_each = range(1000)
        labels   = ["p${port.key}"]
        content {
          dynamic "x" {
            for_each = range(1001)
            content {
        job      dynamic "y" {
                for_each = range(0500)
                content {}
              }
            }
          }
        }
      }
    }
    task "api" {
      driver = "docker"
      config { image = "traefik/whoami" }
    }
  }
}
